// The chat sample behind the default routes.json: a sendmessage is broadcast to every connected client,
// the sender included, exactly once; a closed client drops out without disturbing the others.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, Client, defaultRoutes } from './harness.mjs';

let gw;
let clients;

before(async () => {
  gw = await Gateway.start({ routes: defaultRoutes(), plugins: ['echo', 'chat', 'auth'] });
  clients = await Promise.all([0, 1, 2].map(() => Client.open(gw.url)));
});

after(async () => {
  for (const c of clients ?? []) c.terminate();
  await gw?.stop();
});

const sendmessage = (data) => JSON.stringify({ action: 'sendmessage', data });

test('every client receives each of the 3 messages exactly once, the sender too', async () => {
  clients.forEach((c, n) => c.send(sendmessage(`hi-${n}`)));
  const received = await Promise.all(clients.map((c) => c.collectTexts(3, 5000)));
  for (const [k, got] of received.entries()) {
    assert.deepEqual([...got].sort(), ['hi-0', 'hi-1', 'hi-2'], `client ${k}`);
  }
  await Promise.all(clients.map((c) => c.expectSilence(300)));
});

test('messages from one sender arrive at every client in the order sent', async () => {
  for (let i = 0; i < 20; ++i) clients[0].send(sendmessage(`seq-${i}`));
  const expected = Array.from({ length: 20 }, (_, i) => `seq-${i}`);
  const received = await Promise.all(clients.map((c) => c.collectTexts(20, 5000)));
  for (const [k, got] of received.entries()) assert.deepEqual(got, expected, `client ${k}`);
});

test('non-string data arrives as its JSON text', async () => {
  clients[1].send(sendmessage({ a: 1 }));
  const received = await Promise.all(clients.map((c) => c.nextText()));
  assert.deepEqual(received, ['{"a":1}', '{"a":1}', '{"a":1}']);
});

test('after one client closes the others still receive, and nothing fails', async () => {
  await clients[2].close(1000, 'leaving');
  clients[0].send(sendmessage('after-close'));
  const received = await Promise.all(clients.slice(0, 2).map((c) => c.nextText()));
  assert.deepEqual(received, ['after-close', 'after-close']);
  await Promise.all(clients.slice(0, 2).map((c) => c.expectSilence(300)));
  assert.equal(clients[2].queue.length, 0, 'the closed client got nothing after its close');
  assert.ok(gw.alive());
  assert.deepEqual(gw.errorLines(), []);
});
