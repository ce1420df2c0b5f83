// Bad input on raw sockets: malformed upgrades get 400/405/426 with a reason, an oversized message
// closes with 1009, invalid UTF-8 with 1007; none of it stops the gateway, disturbs an open connection or
// leaves a row behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { Gateway, Client, rawHttp, RawWebSocket, maskedFrame, newWebSocketKey, sqliteRows, waitFor, withTimeout, defaultRoutes } from './harness.mjs';

let gw;
let bystander;

before(async () => {
  gw = await Gateway.start({ routes: defaultRoutes(), plugins: ['echo', 'chat', 'auth'] });
  bystander = await Client.open(gw.url);
});

after(async () => {
  bystander?.terminate();
  await gw?.stop();
});

const host = () => `Host: 127.0.0.1:${gw.port}\r\n`;
const upgradeHeaders = (key = newWebSocketKey(), version = '13') =>
  `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: ${version}\r\n`;

test('a plain HTTP request gets 426 with a hint', async () => {
  const r = await rawHttp(gw.port, `GET / HTTP/1.1\r\n${host()}\r\n`);
  assert.equal(r.status, 426);
  assert.match(r.body, /websocket/i, `body: ${r.body}`);
});

test('Upgrade: websocket without Connection or Sec-WebSocket-Key gets 400 with a JSON reason', async () => {
  const r = await rawHttp(gw.port, `GET / HTTP/1.1\r\n${host()}Upgrade: websocket\r\n\r\n`);
  assert.equal(r.status, 400);
  let body;
  assert.doesNotThrow(() => { body = JSON.parse(r.body); }, `body is not JSON: ${r.body}`);
  assert.equal(typeof body, 'object');
  assert.match(JSON.stringify(body), /connection|sec-websocket-key/i);
});

test('a missing Sec-WebSocket-Key gets 400 naming it', async () => {
  const r = await rawHttp(gw.port, `GET / HTTP/1.1\r\n${host()}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  assert.equal(r.status, 400);
  assert.match(r.body, /sec-websocket-key/i);
  assert.doesNotThrow(() => JSON.parse(r.body), `body is not JSON: ${r.body}`);
});

test('Sec-WebSocket-Version: 8 gets 426 with Sec-WebSocket-Version: 13', async () => {
  const r = await rawHttp(gw.port, `GET / HTTP/1.1\r\n${host()}${upgradeHeaders(undefined, '8')}\r\n`);
  assert.equal(r.status, 426);
  assert.equal(r.headers['sec-websocket-version'], '13');
});

test('a POST upgrade gets 405', async () => {
  const r = await rawHttp(gw.port, `POST / HTTP/1.1\r\n${host()}${upgradeHeaders()}Content-Length: 0\r\n\r\n`);
  assert.equal(r.status, 405);
});

test('bytes that are not HTTP are answered or dropped without harm', async () => {
  const sock = net.connect({ host: '127.0.0.1', port: gw.port });
  await withTimeout(new Promise((resolve, reject) => { sock.on('connect', resolve); sock.on('error', reject); }), 3000, 'connect');
  sock.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]));
  let got = Buffer.alloc(0);
  sock.on('data', (d) => { got = Buffer.concat([got, d]); });
  await withTimeout(new Promise((resolve) => sock.on('close', resolve)), 12000, 'the gateway to drop a non-HTTP connection');
  if (got.length) assert.match(got.toString('latin1'), /^HTTP\/1\.1 4\d\d /);
  assert.ok(gw.alive());
});

test('a correct raw handshake gets 101 with the right Sec-WebSocket-Accept', async () => {
  const raw = await RawWebSocket.open(gw.port);
  assert.equal(raw.response.status, 101);
  assert.equal(raw.response.headers['sec-websocket-accept'], raw.expectedAccept);
  raw.write(maskedFrame(0x1, Buffer.from('raw-echo')));
  await raw.until(() => raw.frames.some((f) => f.opcode === 0x1), 3000, 'the echo');
  const f = raw.frames.find((fr) => fr.opcode === 0x1);
  assert.equal(f.payload.toString(), 'raw-echo');
  assert.equal(f.masked, false, 'server frames are not masked');
  raw.destroy();
});

test('a 200 KiB message (over the 131072-byte limit) closes with 1009', async () => {
  const c = await Client.open(gw.url);
  c.send('x'.repeat(200 * 1024));
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 1009);
});

test('a 200 KiB message sent as small fragments closes with 1009 too', async () => {
  const c = await Client.open(gw.url);
  const part = 'y'.repeat(16 * 1024);
  for (let i = 0; i < 13; ++i) c.ws.send(part, { fin: i === 12 });
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 1009);
});

test('invalid UTF-8 in a text frame closes with 1007', async () => {
  const raw = await RawWebSocket.open(gw.port);
  assert.equal(raw.response.status, 101);
  raw.write(maskedFrame(0x1, Buffer.from([0x68, 0x69, 0xc3, 0x28, 0x21])));
  const close = await raw.closeFrame(5000);
  assert.equal(close.code, 1007);
  assert.ok(!raw.frames.some((f) => f.opcode === 0x1), 'the invalid message was not echoed');
  raw.destroy();
});

test('invalid UTF-8 split across fragments closes with 1007', async () => {
  const raw = await RawWebSocket.open(gw.port);
  raw.write(maskedFrame(0x1, Buffer.from([0x61, 0xe2, 0x82]), false));
  raw.write(maskedFrame(0x0, Buffer.from([0x41, 0x62]), true)); // 0xe2 0x82 must be followed by a continuation byte
  const close = await raw.closeFrame(5000);
  assert.equal(close.code, 1007);
  raw.destroy();
});

test('invalid UTF-8 inside a JSON body that names a route closes with 1007 (the route scan checks it)', async () => {
  const raw = await RawWebSocket.open(gw.port);
  const head = Buffer.from('{"action":"echo","data":"' + 'x'.repeat(200));
  raw.write(maskedFrame(0x1, Buffer.concat([head, Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')])));
  const close = await raw.closeFrame(5000);
  assert.equal(close.code, 1007);
  assert.ok(!raw.frames.some((f) => f.opcode === 0x1), 'the invalid message was not echoed');
  raw.destroy();
});

test('valid UTF-8 in a JSON body is routed and echoed byte for byte', async () => {
  const c = await Client.open(gw.url);
  const body = JSON.stringify({ action: 'echo', data: 'caf\u00e9 \u20ac \u{1f600} '.repeat(300) });
  assert.equal(await c.request(body), body);
  await c.close(1000);
});

test('a handshake abandoned halfway does no harm: its socket is released, no row, no error, the gateway still serves', async () => {
  // Earlier tests' rows are gone first, so that the gateway's descriptors (SQLite in WAL mode keeps its files
  // open) change only with the sockets.
  await waitFor(async () => (await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections')).length === 1,
    { what: 'only the bystander in the table' });
  const descriptors = () => fs.readdirSync(`/proc/${gw.proc.pid}/fd`).length;
  const baseline = descriptors();
  const errorsBefore = gw.errorLines().length;
  const sock = net.connect({ host: '127.0.0.1', port: gw.port });
  await withTimeout(new Promise((resolve, reject) => { sock.on('connect', resolve); sock.on('error', reject); }), 3000, 'connect');
  sock.write(`GET / HTTP/1.1\r\n${host()}Upgrade: websocket\r\n`);
  await waitFor(() => descriptors() === baseline + 1, { what: 'the gateway to accept the half handshake' });
  sock.destroy();
  await waitFor(() => descriptors() === baseline, { what: 'the gateway to release the abandoned socket' });
  assert.ok(gw.alive());
  assert.equal(bystander.closeInfo, null);
  assert.deepEqual((await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections')).length, 1, 'no row for it');
  assert.deepEqual(gw.errorLines().slice(errorsBefore), []);
  const fresh = await Client.open(gw.url);
  assert.equal(await fresh.request('after-the-abandoned-handshake'), 'after-the-abandoned-handshake');
  await fresh.close(1000);
});

test('afterwards the gateway is alive, the open connection undisturbed, a fresh client echoes, and no row is left behind', async () => {
  assert.ok(gw.alive());
  assert.equal(bystander.closeInfo, null);
  assert.equal(await bystander.request('bystander-still-here'), 'bystander-still-here');
  const fresh = await Client.open(gw.url);
  assert.equal(await fresh.request('fresh-echo'), 'fresh-echo');
  await waitFor(async () => (await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections')).length === 2,
    { what: 'exactly the 2 open connections in the table' });
  await fresh.close(1000);
  assert.deepEqual(gw.errorLines(), []);
});
