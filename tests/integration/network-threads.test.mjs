// --network-threads 4: four listeners on one port (SO_REUSEPORT). Connections spread over the threads;
// pushes, GET and DELETE through the management API (on thread 0) and from handlers (on workers) reach
// connections of every thread; a group send reaches all of them once; SIGTERM drains every thread.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Gateway, Client, whoami, readEvents, ctx, waitFor, withTimeout } from './harness.mjs';

let gw;
const clients = [];

function routes(dir) {
  const probe = { handler: 'probe', routeResponse: true };
  return {
    routeSelectionExpression: '$request.body.action',
    handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
    routes: { $connect: { handler: 'probe' }, $disconnect: { handler: 'probe' }, whoami: probe, push: probe, get: probe,
      join: probe, sendgroup: probe, $default: probe },
  };
}

async function metrics() {
  return (await fetch(gw.managementUrl + '/metrics')).text();
}

async function byThread() {
  const out = {};
  for (const m of (await metrics()).matchAll(/^wsgw_network_thread_connections\{thread="(\d+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

before(async () => {
  gw = await Gateway.start({ routes, plugins: ['probe'], extraArgs: ['--network-threads', '4', '--access-log', 'off'] });
  for (let i = 0; i < 40; ++i) {
    const client = await Client.open(gw.url);
    clients.push({ client, id: await whoami(client) });
  }
});

after(async () => {
  for (const c of clients) c.client.ws.terminate();
  await gw?.stop();
});

test('the kernel spreads connections over the four network threads', async () => {
  const counts = await byThread();
  assert.deepEqual(Object.keys(counts).sort(), ['0', '1', '2', '3']);
  assert.equal(Object.values(counts).reduce((a, b) => a + b, 0), 40);
  const used = Object.values(counts).filter((n) => n > 0).length;
  assert.ok(used >= 3, `connections by thread: ${JSON.stringify(counts)}`);
  assert.match(gw.lines.find((l) => l.msg === 'listening') ? JSON.stringify(gw.lines.find((l) => l.msg === 'listening')) : '', /"networkThreads":4/);
});

// The kernel lets any process of the same user join a SO_REUSEPORT group (another server started on the
// port with SO_REUSEPORT of its own). It must get no connection: the gateway's steering program hands new
// connections only to its own four sockets. Before, such a process took about a fifth of them.
test('a process that joins the port with SO_REUSEPORT of its own gets no connection', () => {
  const script = `
import socket, sys
port = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(('127.0.0.1', port))
s.listen(64)
s.setblocking(False)
upgraded = 0
for i in range(60):
    c = socket.create_connection(('127.0.0.1', port))
    c.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n'
              b'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n')
    c.settimeout(2)
    try:
        upgraded += c.recv(12) == b'HTTP/1.1 101'
    except OSError:
        pass
    c.close()
taken = 0
while True:
    try:
        s.accept()
        taken += 1
    except BlockingIOError:
        break
print(upgraded, taken)
`;
  const run = spawnSync('python3', ['-c', script, String(gw.port)], { encoding: 'utf8', timeout: 60000 });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), '60 0', 'upgraded by the gateway, taken by the other process');
});

test('POST and GET through the management API reach connections of every thread', async () => {
  for (const [i, c] of clients.entries()) {
    const post = await fetch(`${gw.managementUrl}/@connections/${c.id}`, { method: 'POST', body: `m-${i}` });
    assert.equal(post.status, 200);
    assert.equal((await c.client.next(3000)).text, `m-${i}`);
    const get = await fetch(`${gw.managementUrl}/@connections/${c.id}`);
    assert.equal(get.status, 200);
    assert.equal(JSON.parse(await get.text()).identity.sourceIp, '127.0.0.1');
  }
});

test('a handler pushes from a worker to connections on other threads, in order', async () => {
  const from = clients[0];
  for (const to of clients.slice(1, 12)) {
    for (let k = 0; k < 5; ++k) assert.equal(await from.client.request(JSON.stringify({ action: 'push', to: to.id, data: `p${k}` })), '0');
    assert.deepEqual(await to.client.collectTexts(5, 3000), ['p0', 'p1', 'p2', 'p3', 'p4']);
  }
});

test('a group spanning every thread gets each send once', async () => {
  for (const c of clients) assert.equal(await c.client.request(JSON.stringify({ action: 'join', group: 'all-threads' })), '0');
  clients[7].client.send(JSON.stringify({ action: 'sendgroup', group: 'all-threads', data: 'everyone' }));
  // The handler sends to the group before it answers: once the answer is in, every member's copy is queued,
  // and a marker posted to a connection afterwards leaves after it (one connection's frames keep their order).
  assert.deepEqual((await clients[7].client.collectTexts(2, 3000)).sort(), ['everyone', 'sent:0']);
  for (const [i, c] of clients.entries()) {
    assert.equal((await fetch(`${gw.managementUrl}/@connections/${c.id}`, { method: 'POST', body: 'marker' })).status, 200);
    const texts = [];
    for (let m = await c.client.next(3000); m.text !== 'marker'; m = await c.client.next(3000)) texts.push(m.text);
    assert.deepEqual(texts, i === 7 ? [] : ['everyone'], `client ${i}`);
  }
});

test('DELETE closes connections of every thread and their $disconnect runs', async () => {
  const victims = clients.splice(30, 10);
  for (const v of victims) assert.equal((await fetch(`${gw.managementUrl}/@connections/${v.id}`, { method: 'DELETE' })).status, 204);
  for (const v of victims) assert.equal((await withTimeout(v.client.closed, 3000, 'the close')).code, 1000);
  await waitFor(() => {
    const gone = readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'DISCONNECT').map((e) => ctx(e).connectionId);
    return victims.every((v) => gone.includes(v.id));
  }, { what: 'the $disconnect of each deleted connection' });
  assert.equal(Object.values(await byThread()).reduce((a, b) => a + b, 0), 30);
});

test('SIGTERM drains every thread: each client gets 1001 and each $disconnect runs', async () => {
  const closes = clients.map((c) => c.client.closed);
  await gw.stop();  // asserts exit 0 and no sanitizer report
  for (const close of await Promise.all(closes)) assert.equal(close.code, 1001);
  const gone = readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'DISCONNECT').map((e) => ctx(e).connectionId);
  for (const c of clients) assert.ok(gone.includes(c.id), `$disconnect of ${c.id}`);
  clients.length = 0;
});
