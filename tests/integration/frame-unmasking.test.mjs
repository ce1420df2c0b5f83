// The gateway takes each client frame's mask off as it reads the socket (ClientFrameScanner::scanUnmasking)
// and hands libwebsockets the frame under a zeroed key; a frame whose key is split between two reads keeps
// its own. Whatever the reads' boundaries, every message, fragment, ping payload and close reason must
// arrive as the client sent it: byte by byte, split inside the key, many frames with different keys in one
// write, pipelined with the upgrade request, and a 70,000-byte binary message (three fragments) in uneven pieces.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Gateway, openRawUpgraded, defaultRoutes, maskedFrame, newWebSocketKey, parseHttpResponse, parseServerFrames, withTimeout,
} from './harness.mjs';

let gw;

before(async () => {
  gw = await Gateway.start({ routes: defaultRoutes(), plugins: ['echo', 'chat', 'auth'] });
});

after(async () => {
  await gw?.stop();
});

const openRaw = () => openRawUpgraded(gw.port);

const payloadOf = (n, seed) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

test('a message written one byte at a time (every key split between reads) comes back whole', async () => {
  const raw = await openRaw();
  const body = JSON.stringify({ action: 'echo', data: 'byte by byte ✓' });
  for (const b of maskedFrame(1, body)) {
    raw.write(Buffer.from([b]));
    await sleep(2);  // each byte its own TCP segment and, mostly, its own read
  }
  await raw.until(() => raw.messages().length === 1, 5000, 'the echo');
  assert.equal(raw.messages()[0].payload.toString('utf8'), body);
  raw.destroy();
});

test('frames split inside and right after their masking key, every offset', async () => {
  const raw = await openRaw();
  const sent = [];
  // A 91-byte body (7-bit length: key at bytes 2-5) and a 300-byte one (16-bit length: key at 4-7).
  for (const n of [91, 300]) {
    for (let cut = 1; cut <= 10; ++cut) {
      const body = JSON.stringify({ action: 'echo', data: 'x'.repeat(n - 29) + String(cut).padStart(2, '0') });
      const f = maskedFrame(1, body);
      raw.write(f.subarray(0, cut));
      await sleep(3);
      raw.write(f.subarray(cut));
      sent.push(body);
    }
  }
  await raw.until(() => raw.messages().length === sent.length, 5000, 'the echoes');
  assert.deepEqual(raw.messages().map((m) => m.payload.toString('utf8')), sent);
  raw.destroy();
});

test('many frames in one write, each with its own key: messages, a fragmented one with a ping inside, a 70,000-byte binary', async () => {
  const raw = await openRaw();
  const big = payloadOf(70000, 7);
  const parts = [];
  const expected = [];
  for (let i = 0; i < 20; ++i) {
    const body = JSON.stringify({ action: 'echo', data: `m${i}`.repeat(i + 1) });
    parts.push(maskedFrame(1, body));
    expected.push(Buffer.from(body));
  }
  // A text message in three fragments with a ping between the first two.
  const pingPayload = payloadOf(33, 99);
  parts.push(maskedFrame(1, 'frag-one,', false), maskedFrame(9, pingPayload), maskedFrame(0, 'frag-two,', false), maskedFrame(0, 'frag-three', true));
  expected.push(Buffer.from('frag-one,frag-two,frag-three'));
  // 70,000 bytes as three fragments of at most 30,000 (a frame may carry 32 KiB: docs/limits.md).
  parts.push(maskedFrame(2, big.subarray(0, 30000), false), maskedFrame(0, big.subarray(30000, 60000), false), maskedFrame(0, big.subarray(60000), true));
  expected.push(big);
  const all = Buffer.concat(parts);
  // Uneven pieces: a 30,000-byte fragment spans several reads, each resuming the mask part-way through the key.
  for (let at = 0; at < all.length; at += 9001) raw.write(all.subarray(at, Math.min(all.length, at + 9001)));
  await raw.until(() => raw.messages().length === expected.length, 10000, 'the echoes');
  const got = raw.messages();
  for (let i = 0; i < expected.length; ++i) assert.ok(got[i].payload.equals(expected[i]), `message ${i} differs`);
  const pong = raw.frames.find((f) => f.opcode === 10);
  assert.ok(pong, 'a pong came');
  assert.ok(pong.payload.equals(pingPayload), 'the pong carries the ping payload');
  raw.destroy();
});

test('frames pipelined with the upgrade request (handed to libwebsockets with the request) come back whole', async () => {
  const sock = net.connect({ host: '127.0.0.1', port: gw.port });
  let buf = Buffer.alloc(0);
  sock.on('data', (c) => { buf = Buffer.concat([buf, c]); });
  sock.on('error', () => {});
  await withTimeout(new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); }), 5000, 'connect');
  // The last one is longer than the gateway's first read of the request (4 KiB): its frame goes on past
  // the bytes handed over with the request and the rest of it is read from the socket.
  const bodies = [1, 2, 3].map((i) => JSON.stringify({ action: 'echo', data: `pipelined ${i}`.repeat(i === 3 ? 1000 : i * 10) }));
  const head = `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${newWebSocketKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  sock.write(Buffer.concat([Buffer.from(head), ...bodies.map((b) => maskedFrame(1, b))]));
  const texts = () => {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return [];
    return parseServerFrames(buf.subarray(end + 4)).frames.filter((f) => f.opcode === 1).map((f) => f.payload.toString('utf8'));
  };
  await withTimeout((async () => { while (texts().length < bodies.length) await sleep(10); })(), 5000, 'the echoes');
  assert.equal(parseHttpResponse(buf.subarray(0, buf.indexOf('\r\n\r\n') + 4)).status, 101);
  assert.deepEqual(texts(), bodies);
  sock.destroy();
});

// The close is answered with the client's own code and reason: they must have been unmasked right.
for (const split of [false, true]) {
  test(`a close frame ${split ? 'split inside its key' : 'in one write (its key zeroed)'}: answered with its code and reason`, async () => {
    const raw = await openRaw();
    const reason = split ? 'split close' : 'whole close ✓';
    const f = maskedFrame(8, Buffer.concat([Buffer.from([0x0f, 0xa0]), Buffer.from(reason)]));  // 4000
    if (split) {
      raw.write(f.subarray(0, 4));
      await sleep(3);
      raw.write(f.subarray(4));
    } else {
      raw.write(f);
    }
    const close = await raw.closeFrame(5000);
    assert.equal(close.code, 4000);
    assert.equal(close.reason, reason);
    raw.destroy();
  });
}
