// Handlers through the probe plugin: they run off the network thread (a sleeping handler delays nobody
// else), one connection's messages keep their order, integration errors get AWS's frame and leave the
// connection open, and the host API (push, get, delete, pushes from a plugin's own thread) works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, Client, probeRoutes, whoami, errorFrameRegex, waitFor, waitForEvent, ctx } from './harness.mjs';

let gw;
let a;
let b;
let idA;
let idB;

before(async () => {
  gw = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'], workers: 4 });
  a = await Client.open(gw.url);
  b = await Client.open(gw.url);
  idA = await whoami(a);
  idB = await whoami(b);
});

after(async () => {
  a?.terminate();
  b?.terminate();
  await gw?.stop();
});

const act = (action, fields = {}) => JSON.stringify({ action, ...fields });

test('a handler sleeping 2 s on one connection does not delay echoes on another', async () => {
  const started = Date.now();
  a.send(act('sleep', { ms: 2000 }));
  const slowest = { ms: 0 };
  for (let i = 0; i < 20; ++i) {
    const t0 = Date.now();
    assert.equal(await b.request(`rt-${i}`, 2000), `rt-${i}`);
    const ms = Date.now() - t0;
    slowest.ms = Math.max(slowest.ms, ms);
    assert.ok(ms < 500, `round trip ${i} on B took ${ms} ms while A's handler slept`);
  }
  assert.ok(Date.now() - started < 1900, 'B finished its round trips while A still slept');
  assert.equal(await a.nextText(4000), 'slept');
  assert.ok(Date.now() - started >= 1900, 'the sleep really took 2 s');
});

test('one connection\'s messages reach the handler in arrival order', async () => {
  a.send(act('sleep', { ms: 300 }));
  a.send('after-sleep-1');
  a.send(act('sleep', { ms: 50 }));
  a.send('after-sleep-2');
  assert.deepEqual(await a.collectTexts(4, 3000), ['slept', 'after-sleep-1', 'slept', 'after-sleep-2']);
});

test('a handler returning non-zero gets AWS\'s Internal server error frame and the connection stays open', async () => {
  const frame = await a.request(act('fail'));
  const m = errorFrameRegex('Internal server error').exec(frame);
  assert.ok(m, `frame ${JSON.stringify(frame)}`);
  assert.equal(m[1], idA);
  assert.ok(m[2].length > 0);
  assert.equal(await a.request('still-echoes-after-fail'), 'still-echoes-after-fail');
});

// A route response is bounded by maxMessageBytes as pushes are (128 KiB by default): over it the client
// gets the integration error and the log says why, instead of a frame of any size.
test('a route response over maxMessageBytes is an integration error saying so; at the limit it is sent', async () => {
  const frame = await a.request(act('big', { size: 131073 }));
  const m = errorFrameRegex('Internal server error').exec(frame);
  assert.ok(m, `frame of ${frame.length} bytes: ${frame.slice(0, 80)}`);
  const logged = await waitFor(() => gw.lines.find((l) => l.msg === 'integration error' && /route response is 131073 bytes, over limits\.maxMessageBytes \(131072/.test(l.error ?? '')),
    { what: 'the integration error line' });
  assert.ok(logged);
  assert.equal((await a.request(act('big', { size: 131072 }))).length, 131072);
});

test('a handler that throws gets the same frame and the connection stays open', async () => {
  const frame = await a.request(act('throw'));
  const m = errorFrameRegex('Internal server error').exec(frame);
  assert.ok(m, `frame ${JSON.stringify(frame)}`);
  assert.equal(m[1], idA);
  assert.equal(await a.request('still-echoes-after-throw'), 'still-echoes-after-throw');
  assert.ok(gw.alive());
});

test('100 pushes from a thread the plugin started arrive complete and in order', async () => {
  a.send(act('threadpush', { count: 100 }));
  const got = await a.collectTexts(100, 10000);
  assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => `tp-${i}`));
});

test('post_to_connection to another connection\'s id arrives there', async () => {
  assert.equal(await a.request(act('push', { to: idB, data: 'x-from-a' })), '0');
  assert.equal(await b.nextText(), 'x-from-a');
});

test('post_to_connection to a well-formed id that is gone returns WSGW_GONE (1)', async () => {
  const c = await Client.open(gw.url);
  const idC = await whoami(c);
  await c.close(1000);
  await waitForEvent(gw.eventsPath, (e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === idC,
    { what: 'the $disconnect of the closed connection' });
  assert.equal(await a.request(act('push', { to: idC, data: 'to-nobody' })), '1');
  assert.equal(await a.request(act('get', { id: idC })), '-1');
});

test('get_connection describes a live connection', async () => {
  const before = Date.now();
  const text = await a.request(act('get', { id: idB }));
  const info = JSON.parse(text);
  // ISO-8601 times with milliseconds, as AWS's GetConnection answers.
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
  assert.match(info.connectedAt, iso);
  assert.match(info.lastActiveAt, iso);
  const connectedAt = Date.parse(info.connectedAt);
  const lastActiveAt = Date.parse(info.lastActiveAt);
  assert.ok(connectedAt > before - 60000 && connectedAt <= Date.now(), `connectedAt ${info.connectedAt}`);
  assert.ok(lastActiveAt >= connectedAt, `lastActiveAt ${info.lastActiveAt} < connectedAt ${info.connectedAt}`);
  assert.equal(info.identity?.sourceIp, '127.0.0.1');
});

test('delete_connection closes another connection and its $disconnect runs', async () => {
  const c = await Client.open(gw.url);
  const idC = await whoami(c);
  assert.equal(await a.request(act('delete', { id: idC })), '0');
  const closed = await c.waitClosed(3000);
  assert.equal(closed.code, 1000);
  await waitForEvent(gw.eventsPath, (e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === idC,
    { what: 'the $disconnect of the deleted connection' });
  assert.equal(await a.request('a-unaffected'), 'a-unaffected');
  assert.equal(await b.request('b-unaffected'), 'b-unaffected');
});
