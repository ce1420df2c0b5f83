// A client frame without a mask fails the connection with 1002 (RFC 6455 5.1; issue 18):
// the server's close frame says 1002, the frame is never routed or echoed, the socket is closed,
// $disconnect runs once with 1002 and the row is gone. Frames before it are still answered; over plain
// TCP, wss:// and a proxy route alike, and when it comes in the same TCP write as the upgrade request.
// Other connections go on being served.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { WebSocketServer } from 'ws';
import {
  Client, Gateway, RawWebSocket, probeGatewayWithBystander, ctx, makeTempDir, maskedFrame, newWebSocketKey, parseHttpResponse,
  parseServerFrames, probeRoutes, readEvents, sqliteRows, waitFor, whoami, withTimeout,
} from './harness.mjs';

const REASON = /client frame not masked/;

// A frame as a broken client sends it: MASK bit clear, no masking key.
function unmaskedFrame(opcode, payload) {
  const data = Buffer.from(payload);
  if (data.length < 126) return Buffer.concat([Buffer.from([0x80 | opcode, data.length]), data]);
  const header = Buffer.from([0x80 | opcode, 126, 0, 0]);
  header.writeUInt16BE(data.length, 2);
  return Buffer.concat([header, data]);
}

// A raw WebSocket whose first write carries the upgrade request and `after` together (pipelined), over
// a TCP or TLS socket: resolves with {status, frames, closed} once the server has closed the socket.
async function pipelined(connect, after, { target = '/' } = {}) {
  const sock = connect();
  let buf = Buffer.alloc(0);
  const closed = new Promise((resolve) => sock.on('close', resolve));
  sock.on('data', (chunk) => { buf = Buffer.concat([buf, chunk]); });
  sock.on('error', () => {});
  await withTimeout(new Promise((resolve, reject) => {
    sock.once(sock instanceof tls.TLSSocket ? 'secureConnect' : 'connect', resolve);
    sock.once('error', reject);
  }), 5000, 'connect');
  const head = `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${newWebSocketKey()}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: unmasked-it\r\n\r\n`;
  sock.write(Buffer.concat([Buffer.from(head), after]));
  // The server closes by itself (its close frame gets no answer from this client): no end() from here.
  await withTimeout(closed, 15000, 'the server to close the socket');
  const end = buf.indexOf('\r\n\r\n');
  assert.ok(end > 0, `an upgrade response came: ${JSON.stringify(buf.toString('latin1'))}`);
  const { frames } = parseServerFrames(buf.subarray(end + 4));
  return { status: parseHttpResponse(buf.subarray(0, end + 4)).status, frames };
}

const closeOf = (frames) => {
  const f = frames.find((fr) => fr.opcode === 8);
  return f && { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString('utf8') };
};
const texts = (frames) => frames.filter((f) => f.opcode === 1).map((f) => f.payload.toString('utf8'));

// The connection that appeared since `known` (a set of IDs), from the probe's $connect events.
function newConnectionId(gw, known) {
  const ids = readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'CONNECT').map((e) => ctx(e).connectionId);
  return ids.find((id) => !known.has(id));
}
const connectedIds = (gw) => new Set(readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'CONNECT').map((e) => ctx(e).connectionId));

// $disconnect ran exactly once, with 1002 and our reason, and the row is gone.
async function assertFailedWith1002(gw, id, reason = REASON) {
  const disc = await waitFor(() => {
    const mine = readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === id);
    return mine.length ? mine : null;
  }, { timeoutMs: 10000, what: `$disconnect of ${id}` });
  await waitFor(async () => (await sqliteRows(gw.dbPath, `SELECT connection_id FROM connections WHERE connection_id = '${id}'`)).length === 0,
    { timeoutMs: 5000, what: `the row of ${id} to be removed` });
  // Nothing more may come: a second $disconnect would follow the first at once.
  const again = readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === id);
  assert.equal(again.length, 1, 'exactly one $disconnect');
  assert.equal(ctx(disc[0]).disconnectStatusCode, 1002);
  assert.match(ctx(disc[0]).disconnectReason, reason);
}

describe('plain ws://', () => {
  const env = probeGatewayWithBystander();

  test('an unmasked text frame alone: close 1002 from the server, no echo, the socket closed', async () => {
    const known = connectedIds(env.gw);
    const raw = await RawWebSocket.open(env.gw.port);
    const id = await waitFor(() => newConnectionId(env.gw, known), { what: 'its $connect' });
    raw.write(unmaskedFrame(1, 'never echoed'));
    const close = await raw.closeFrame();
    assert.equal(close.code, 1002);
    assert.match(close.reason, REASON);
    // This client neither answers the close nor hangs up: the server closes the socket by itself.
    await waitFor(() => raw.closedSocket, { timeoutMs: 15000, what: 'the server to close the socket' });
    assert.deepEqual(texts(raw.frames), [], 'nothing was echoed');
    await assertFailedWith1002(env.gw, id);
  });

  test('a masked frame then an unmasked one in the same write: the first is echoed, then 1002', async () => {
    const raw = await RawWebSocket.open(env.gw.port);
    raw.write(maskedFrame(1, JSON.stringify({ action: 'whoami' })));
    await raw.until(() => texts(raw.frames).length === 1, 5000, 'the whoami answer');
    const id = texts(raw.frames)[0];
    raw.write(Buffer.concat([maskedFrame(1, 'first'), unmaskedFrame(1, 'second'), maskedFrame(1, 'third')]));
    const close = await raw.closeFrame();
    assert.equal(close.code, 1002);
    const closeAt = raw.frames.findIndex((f) => f.opcode === 8);
    assert.deepEqual(texts(raw.frames.slice(0, closeAt)), [id, 'first'], 'the frame before the unmasked one was answered, before the close');
    assert.deepEqual(texts(raw.frames), [id, 'first'], 'nothing after it was');
    raw.write(maskedFrame(8, Buffer.from([0x03, 0xea])));  // a client's answer to the close, then its FIN
    raw.sock.end();
    await waitFor(() => raw.closedSocket, { timeoutMs: 15000, what: 'the socket to close' });
    await assertFailedWith1002(env.gw, id);
  });

  test('an unmasked frame in the same TCP write as the upgrade request', async () => {
    const known = connectedIds(env.gw);
    const got = await pipelined(() => net.connect({ host: '127.0.0.1', port: env.gw.port }), unmaskedFrame(1, 'pipelined'));
    assert.equal(got.status, 101);
    assert.equal(closeOf(got.frames)?.code, 1002);
    assert.deepEqual(texts(got.frames), []);
    await assertFailedWith1002(env.gw, await waitFor(() => newConnectionId(env.gw, known), { what: 'its $connect' }));
  });

  test('masked then unmasked, both pipelined after the upgrade request: the first is echoed, then 1002', async () => {
    const known = connectedIds(env.gw);
    const got = await pipelined(() => net.connect({ host: '127.0.0.1', port: env.gw.port }),
      Buffer.concat([maskedFrame(1, 'early'), unmaskedFrame(2, Buffer.alloc(300, 7))]));
    assert.equal(got.status, 101);
    assert.deepEqual(texts(got.frames), ['early']);
    assert.equal(got.frames.at(-1).opcode, 8);
    assert.equal(closeOf(got.frames).code, 1002);
    await assertFailedWith1002(env.gw, await waitFor(() => newConnectionId(env.gw, known), { what: 'its $connect' }));
  });

  test('an unmasked close frame fails the connection too (it is not echoed as a close)', async () => {
    const raw = await RawWebSocket.open(env.gw.port);
    raw.write(unmaskedFrame(8, Buffer.from([0x03, 0xe8])));
    assert.equal((await raw.closeFrame()).code, 1002);
    raw.destroy();
  });

  test('other connections keep being served, and new ones open', async () => {
    assert.equal(await env.bystander.request('still here'), 'still here');
    const fresh = await Client.open(env.gw.url);
    assert.equal(await fresh.request('hello'), 'hello');
    await fresh.close(1000);
    assert.ok(env.gw.alive());
  });
});

describe('wss://', () => {
  let gw;
  before(async () => {
    const dir = makeTempDir('wsgw-unmasked-tls-');
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    gw = await Gateway.start({ dir, routes: probeRoutes(), plugins: ['probe'], extraArgs: ['--tls-cert', certFile, '--tls-key', keyFile] });
  });
  after(async () => {
    await gw?.stop();
  });

  const connectTls = () => tls.connect({ host: '127.0.0.1', port: gw.port, rejectUnauthorized: false });

  test('masked then unmasked over TLS: the first is echoed, then 1002, and $disconnect has 1002', async () => {
    const known = connectedIds(gw);
    const got = await pipelined(connectTls, Buffer.concat([maskedFrame(1, 'over tls'), unmaskedFrame(1, 'bad')]));
    assert.equal(got.status, 101);
    assert.deepEqual(texts(got.frames), ['over tls']);
    assert.equal(closeOf(got.frames)?.code, 1002);
    await assertFailedWith1002(gw, await waitFor(() => newConnectionId(gw, known), { what: 'its $connect' }));
  });

  test('an unmasked frame after the upgrade, in its own TLS record', async () => {
    const known = connectedIds(gw);
    const sock = connectTls();
    let buf = Buffer.alloc(0);
    let closed = false;
    sock.on('data', (c) => { buf = Buffer.concat([buf, c]); });
    sock.on('close', () => { closed = true; });
    await new Promise((resolve, reject) => { sock.once('secureConnect', resolve); sock.once('error', reject); });
    sock.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${newWebSocketKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await waitFor(() => buf.indexOf('\r\n\r\n') > 0, { what: 'the 101' });
    sock.write(unmaskedFrame(1, 'bad'));
    await waitFor(() => closed, { timeoutMs: 15000, what: 'the server to close the socket' });
    const { frames } = parseServerFrames(buf.subarray(buf.indexOf('\r\n\r\n') + 4));
    assert.equal(closeOf(frames)?.code, 1002);
    assert.deepEqual(texts(frames), []);
    await assertFailedWith1002(gw, await waitFor(() => newConnectionId(gw, known), { what: 'its $connect' }));
  });
});

describe('a proxy route', () => {
  let gw;
  let backend;
  const backendCloses = [];
  before(async () => {
    backend = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => backend.on('listening', resolve));
    backend.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('close', (code) => backendCloses.push(code));
    });
    gw = await Gateway.start({
      routes: (dir) => ({
        routeSelectionExpression: '$request.body.action',
        proxy: { url: `ws://127.0.0.1:${backend.address().port}/` },
        handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
        routes: { $connect: { handler: 'probe' }, $disconnect: { handler: 'probe' } },
      }),
      plugins: ['probe'],
    });
  });
  after(async () => {
    try {
      await gw?.stop();
    } finally {
      for (const ws of backend.clients) ws.terminate();
      await new Promise((resolve) => backend.close(resolve));
    }
  });

  test('the backend echoes the masked frame; the unmasked one never reaches it, and both sides see 1002', async () => {
    const known = connectedIds(gw);
    const raw = await RawWebSocket.open(gw.port);
    raw.write(maskedFrame(1, 'via backend'));
    await raw.until(() => texts(raw.frames).length === 1, 5000, 'the backend echo');
    raw.write(unmaskedFrame(1, 'not for the backend'));
    assert.equal((await raw.closeFrame()).code, 1002);
    assert.deepEqual(texts(raw.frames), ['via backend']);
    raw.destroy();
    await waitFor(() => backendCloses.length === 1, { timeoutMs: 10000, what: 'the backend connection to close' });
    assert.equal(backendCloses[0], 1002);
    await assertFailedWith1002(gw, await waitFor(() => newConnectionId(gw, known), { what: 'its $connect' }));
  });
});

// The other frames RFC 6455 says fail the connection (5.2, 5.4, 5.5). libwebsockets catches most of them too,
// but then waited 30 s for the client's close and reported 1006 to $disconnect: now each closes as an
// unmasked frame does, within the 5 s close deadline, with its reason, after the messages before it.
describe('other frames that fail the connection', () => {
  let gw;
  before(async () => { gw = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'] }); });
  after(async () => { await gw?.stop(); });

  const withBits = (bits, frame) => { frame[0] |= bits; return frame; };
  const RSV1 = 0x40, RSV2 = 0x20, RSV3 = 0x10;
  // RFC 6455 5.2: a 64-bit length's most significant bit must be 0. libwebsockets dropped the TCP connection
  // without a close frame ($disconnect saw 1006).
  const topBitLength = () => {
    const frame = maskedFrame(2, Buffer.alloc(70000, 0x41));
    frame[2] |= 0x80;  // the first byte of the 64-bit length
    return frame;
  };
  const cases = [
    ['a ping without FIN', () => maskedFrame(9, 'p', false), /fragmented control frame/],
    ['reserved opcode 3', () => maskedFrame(3, 'x'), /reserved opcode/],
    ['RSV2 on a text frame', () => withBits(RSV2, maskedFrame(1, 'x')), /reserved bits/],
    ['RSV3 on a binary frame', () => withBits(RSV3, maskedFrame(2, 'x')), /reserved bits/],
    // No extension offered, so none negotiated: libwebsockets closed with its own terse "rsv bits", held
    // the connection ~10 s and $disconnect saw 1006.
    ['RSV1 on a text frame', () => withBits(RSV1, maskedFrame(1, 'x')), /RSV1 set but no extension was negotiated/],
    ['RSV1 on a ping', () => withBits(RSV1, maskedFrame(9, 'p')), /RSV1 set but no extension was negotiated/],
    ['a 64-bit length with its most significant bit set', topBitLength, /64-bit payload length with its most significant bit set/],
    ['a close of 126 bytes', () => maskedFrame(8, Buffer.alloc(126, 0x41)), /control frame payload over 125 bytes/],
    ['a continuation with no message to continue', () => maskedFrame(0, 'x'), /continuation frame with no message/],
    ['a text frame inside a fragmented message', () => Buffer.concat([maskedFrame(1, 'part', false), maskedFrame(1, 'x')]),
      /new message before the fragmented one ended/],
  ];
  for (const [what, bad, reason] of cases) {
    test(`${what}: the message before it is answered, then 1002 with the reason, the socket closed, $disconnect 1002`, async () => {
      const raw = await RawWebSocket.open(gw.port);
      raw.write(maskedFrame(1, JSON.stringify({ action: 'whoami' })));
      await raw.until(() => texts(raw.frames).length === 1, 5000, 'the whoami answer');
      const id = texts(raw.frames)[0];
      raw.write(Buffer.concat([maskedFrame(1, 'before'), bad(), maskedFrame(1, 'after')]));
      const close = await raw.closeFrame();
      assert.equal(close.code, 1002);
      assert.match(close.reason, reason);
      assert.deepEqual(texts(raw.frames), [id, 'before'], 'the message before it was answered, nothing after it');
      // This client neither answers the close nor hangs up: the close deadline (5 s) ends the connection.
      await waitFor(() => raw.closedSocket, { timeoutMs: 12000, what: 'the server to close the socket' });
      await assertFailedWith1002(gw, id, reason);
    });
  }
});

// With permessage-deflate negotiated, RSV1 marks a message's first frame as compressed (RFC 7692 6) and
// passes; on a continuation it is still a protocol error.
describe('RSV1 on a connection that negotiated permessage-deflate', () => {
  let gw;
  before(async () => { gw = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'] }); });
  after(async () => { await gw?.stop(); });

  // A text frame holding `text` compressed as RFC 7692 7.2.1 says: DEFLATE, the final empty block's
  // 00 00 ff ff taken off, RSV1 set.
  const compressedText = (text) => {
    const deflated = zlib.deflateRawSync(Buffer.from(text), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const frame = maskedFrame(1, deflated.subarray(0, deflated.length - 4));
    frame[0] |= 0x40;
    return frame;
  };

  test('a compressed message is answered; RSV1 on a continuation then fails with 1002 and $disconnect 1002', async () => {
    const raw = await RawWebSocket.open(gw.port, { headers: ['Sec-WebSocket-Extensions: permessage-deflate'] });
    assert.match(raw.response.headers['sec-websocket-extensions'] ?? '', /permessage-deflate/);
    raw.write(maskedFrame(1, JSON.stringify({ action: 'whoami' })));
    await raw.until(() => texts(raw.frames).length === 1, 5000, 'the whoami answer');
    const id = texts(raw.frames)[0];
    raw.write(compressedText('squeezed '.repeat(20)));
    await raw.until(() => texts(raw.frames).length === 2, 5000, 'the echo of the compressed message');
    assert.equal(texts(raw.frames)[1], 'squeezed '.repeat(20));
    const rsv1Continuation = maskedFrame(0, 'tail');
    rsv1Continuation[0] |= 0x40;
    raw.write(Buffer.concat([maskedFrame(1, 'head', false), rsv1Continuation]));
    const close = await raw.closeFrame();
    assert.equal(close.code, 1002);
    assert.match(close.reason, /reserved bits/);
    assert.equal(texts(raw.frames).length, 2, 'the broken message was not answered');
    await waitFor(() => raw.closedSocket, { timeoutMs: 12000, what: 'the server to close the socket' });
    await assertFailedWith1002(gw, id, /reserved bits/);
  });
});
