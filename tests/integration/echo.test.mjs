// The repository's default routes.json served by the real gateway: echo keeps text as text and binary
// as binary, keeps the order of a pipelined stream, and serves concurrent clients without cross-talk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, Client, defaultRoutes } from './harness.mjs';

let gw;

before(async () => {
  gw = await Gateway.start({ routes: defaultRoutes(), plugins: ['echo', 'chat', 'auth'] });
});

after(async () => {
  await gw?.stop();
});

test('a text message comes back as the same text frame ($default route)', async () => {
  const c = await Client.open(gw.url);
  c.send('hello, gateway ✓');
  const msg = await c.next();
  assert.equal(msg.isBinary, false);
  assert.equal(msg.text, 'hello, gateway ✓');
  await c.close(1000);
});

test('a message selecting the "echo" route comes back unchanged', async () => {
  const c = await Client.open(gw.url);
  const body = JSON.stringify({ action: 'echo', data: [1, 2, 3] });
  assert.equal(await c.request(body), body);
  await c.close(1000);
});

test('a binary message comes back as the same binary frame', async () => {
  const c = await Client.open(gw.url);
  const payload = Buffer.concat([Buffer.from([0, 0xff, 0xc3, 0x28]), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]);
  c.send(payload);
  const msg = await c.next();
  assert.equal(msg.isBinary, true);
  assert.ok(msg.data.equals(payload), `got ${msg.data.toString('hex')}`);
  await c.close(1000);
});

test('1000 pipelined messages on one connection come back complete and in order', async () => {
  const c = await Client.open(gw.url);
  const sent = Array.from({ length: 1000 }, (_, i) => `msg-${i}`);
  for (const m of sent) c.send(m);
  const got = await c.collectTexts(sent.length, 20000);
  assert.deepEqual(got, sent);
  await c.expectSilence(200);
  await c.close(1000);
});

test('an empty message is echoed as an empty message (Autobahn 1.1.1) and the next one still echoes', async () => {
  const c = await Client.open(gw.url);
  c.send('');
  c.send('after-empty');
  assert.equal(await c.nextText(), '');
  assert.equal(await c.nextText(), 'after-empty');
  await c.expectSilence(200);
  await c.close(1000);
});

test('a 100 KiB message sent as four fragments comes back whole', async () => {
  const c = await Client.open(gw.url);
  const part = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(712).slice(0, 25600);
  for (let i = 0; i < 4; ++i) c.ws.send(part, { fin: i === 3 });
  const msg = await c.next(10000);
  assert.equal(msg.isBinary, false);
  assert.equal(msg.data.length, 4 * part.length);
  assert.equal(msg.text, part.repeat(4));
  await c.close(1000);
});

test('10 concurrent clients each get exactly their own messages, in order', async () => {
  const clients = await Promise.all(Array.from({ length: 10 }, () => Client.open(gw.url)));
  const perClient = 50;
  clients.forEach((c, k) => {
    for (let i = 0; i < perClient; ++i) c.send(`client-${k}-msg-${i}`);
  });
  const results = await Promise.all(clients.map((c) => c.collectTexts(perClient, 15000)));
  results.forEach((got, k) => {
    assert.deepEqual(got, Array.from({ length: perClient }, (_, i) => `client-${k}-msg-${i}`), `client ${k}`);
  });
  await Promise.all(clients.map((c) => c.expectSilence(200)));
  await Promise.all(clients.map((c) => c.close(1000)));
  assert.ok(gw.alive(), 'the gateway is still running');
  assert.deepEqual(gw.errorLines(), []);
});
