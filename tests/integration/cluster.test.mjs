// A cluster of three wsgw nodes sharing Redis, behind HAProxy, all started here on loopback: clients spread
// over the nodes by the load balancer; the chat sample (a cluster-wide group) reaches every client exactly
// once; @connections POST/GET/DELETE and the group endpoints work through every node for connections on
// every other node; a node killed with SIGKILL is reaped (rows gone, $disconnect exactly once, pushes 410)
// within 4 s (--cluster-node-ttl 2: the TTL and a beat) while the others carry on; a Redis restart in the middle of traffic is
// survived.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Gateway, Client, whoami, readEvents, ctx, makeTempDir, runExpectingExit, waitFor, withTimeout } from './harness.mjs';
import { RedisServer, freePort } from './redis-server.mjs';

const NODE_IDS = ['n1', 'n2', 'n3'];
// A 2 s node TTL (5 s by default): the reaps these tests wait for come 3 s sooner each.
const clusterArgs = () => ['--cluster', `redis://127.0.0.1:${redis.port}`, '--cluster-node-ttl', '2'];

let redis;      // RedisServer
let haproxy;    // { proc, port }
const nodes = new Map();  // id -> Gateway
const clients = [];       // { client, id, node }

function tcpReady(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function startHaproxy(backendPorts) {
  const dir = makeTempDir('wsgw-haproxy-');
  const port = await freePort();
  const cfg = [
    'global', '  maxconn 4096',
    'defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 120s', '  timeout server 120s',
    'frontend ws', `  bind 127.0.0.1:${port}`, '  default_backend gateways',
    'backend gateways', '  balance roundrobin',
    ...backendPorts.map((p, i) => `  server ${NODE_IDS[i]} 127.0.0.1:${p} check inter 300 fall 2 rise 1`),
  ].join('\n') + '\n';
  const cfgPath = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfgPath, cfg);
  const proc = spawn('haproxy', ['-db', '-f', cfgPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  haproxy = { proc, port, exited, stderr: () => stderr };
  await waitFor(() => tcpReady(port), { timeoutMs: 10000, what: `haproxy to listen (${stderr})` });
}

// $connect and sendmessage go to chat (whose room is a cluster-wide group), $disconnect to the probe so
// that each node's events file shows which $disconnects ran where.
function clusterRoutes(dir) {
  return {
    routeSelectionExpression: '$request.body.action',
    handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
    routes: {
      $connect: { handler: 'chat' },
      $disconnect: { handler: 'probe' },
      sendmessage: { handler: 'chat' },
      whoami: { handler: 'probe', routeResponse: true },
      sleep: { handler: 'probe', routeResponse: true },
      join: { handler: 'probe', routeResponse: true },
      sendgroup: { handler: 'probe', routeResponse: true },
      push: { handler: 'probe', routeResponse: true },
      $default: { handler: 'echo', routeResponse: true },
    },
  };
}

async function startNode(id) {
  const gw = await Gateway.start({ routes: clusterRoutes, plugins: ['chat', 'echo', 'probe'], nodeId: id,
    extraArgs: [...clusterArgs(), '--access-log', 'off'] });
  nodes.set(id, gw);
  return gw;
}

async function mgmt(nodeId, method, p, body) {
  const res = await fetch(nodes.get(nodeId).managementUrl + p, { method, body });
  return { status: res.status, body: await res.text(), type: res.headers.get('x-amzn-errortype') };
}

async function nodeOf(connectionId) {
  return redis.cli('HGET', `wsgw:conn:${connectionId}`, 'node');
}

function liveNodes() {
  return NODE_IDS.filter((n) => nodes.get(n)?.alive());
}

// Every message each client has received since the last call, as texts, with no waiting for silence: a
// marker is broadcast through each live node, and a node's sends reach every client in the order it made
// them (locally, and through its one Redis publishing connection), so once a client has every node's marker
// it has everything those nodes sent before. Each send must have been made (its call returned) first.
let markerRound = 0;
async function drain(list) {
  const markers = new Map(liveNodes().map((n) => [`marker-${++markerRound}-${n}`, n]));
  for (const [text, n] of markers) assert.equal((await mgmt(n, 'POST', '/@broadcast', text)).status, 200);
  return Promise.all(list.map(async (c) => {
    const got = [];
    const missing = new Set(markers.keys());
    while (missing.size) {
      const m = await c.client.next(5000).catch((err) => {
        throw new Error(`${c.id} on ${c.node} never got the markers ${[...missing].join(', ')} (after ${JSON.stringify(got)}): ${err.message}`);
      });
      if (!missing.delete(m.text)) got.push(m.text);
    }
    return got;
  }));
}

// Until `client` has `text` queued (left in the queue): the chat handler sends to its room, the sender
// included, so this says that a message sent with client.send() has gone out to the room.
function queued(client, text) {
  return waitFor(() => client.queue.some((m) => m.text === text), { timeoutMs: 5000, what: `${text} to come back to its sender` });
}

before(async () => {
  redis = await RedisServer.start();
  for (const id of NODE_IDS) await startNode(id);
  await startHaproxy(NODE_IDS.map((id) => nodes.get(id).port));
  // HAProxy's round robin spreads the clients; each learns its ID and we learn its node from Redis.
  for (let i = 0; i < 30; ++i) {
    const client = await Client.open(`ws://127.0.0.1:${haproxy.port}/`);
    const id = await whoami(client);
    clients.push({ client, id, node: null });
  }
  await waitFor(async () => {
    for (const c of clients) c.node = await nodeOf(c.id);
    return clients.every((c) => NODE_IDS.includes(c.node));
  }, { timeoutMs: 5000, what: 'every connection to be in Redis with its node' });
});

after(async () => {
  for (const c of clients) c.client.ws.terminate();
  if (haproxy?.proc && haproxy.proc.exitCode === null) {
    haproxy.proc.kill('SIGTERM');
    await withTimeout(haproxy.exited, 5000, 'haproxy to exit').catch(() => haproxy.proc.kill('SIGKILL'));
  }
  try {
    // SIGTERM must drain cleanly (exit 0, no sanitizer report); every node is stopped even if one did not.
    const failures = [];
    for (const gw of nodes.values()) await gw.stop().catch((err) => failures.push(err));
    if (failures.length) throw failures[0];
  } finally {
    await redis?.stop();
  }
});

test('HAProxy spreads the clients over the three nodes, and Redis holds each row with its node', async () => {
  const perNode = Object.fromEntries(NODE_IDS.map((n) => [n, clients.filter((c) => c.node === n).length]));
  for (const n of NODE_IDS) assert.ok(perNode[n] >= 5, `node ${n} holds ${perNode[n]} of 30 clients: ${JSON.stringify(perNode)}`);
  for (const n of NODE_IDS) {
    const members = (await redis.cli('SMEMBERS', `wsgw:node:${n}:conns`)).split('\n').filter(Boolean).sort();
    assert.deepEqual(members, clients.filter((c) => c.node === n).map((c) => c.id).sort());
  }
  assert.ok(Number(await redis.cli('PTTL', 'wsgw:node:n1:alive')) > 0, 'n1 has a heartbeat with a TTL');
});

test('chat: every message reaches every client exactly once, whichever node sent it', async () => {
  const senders = NODE_IDS.map((n) => clients.find((c) => c.node === n));
  for (const [i, s] of senders.entries()) s.client.send(JSON.stringify({ action: 'sendmessage', data: `hello-${i}` }));
  for (const [i, s] of senders.entries()) await queued(s.client, `hello-${i}`);
  const got = await drain(clients);
  for (const [i, texts] of got.entries()) {
    const sorted = [...texts].sort();
    assert.deepEqual(sorted, ['hello-0', 'hello-1', 'hello-2'], `client ${i} on ${clients[i].node} got ${JSON.stringify(texts)}`);
  }
});

test('@connections POST, GET and DELETE through every node for connections on every other node', async () => {
  for (const via of NODE_IDS) {
    for (const target of clients.filter((c) => c.node !== via).slice(0, 4)) {
      const post = await mgmt(via, 'POST', `/@connections/${target.id}`, `from-${via}`);
      assert.equal(post.status, 200, `POST via ${via} to a connection on ${target.node}: ${post.body}`);
      assert.equal((await target.client.next(3000)).text, `from-${via}`);
      const get = await mgmt(via, 'GET', `/@connections/${target.id}`);
      assert.equal(get.status, 200, get.body);
      const desc = JSON.parse(get.body);
      assert.match(desc.connectedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(desc.identity.sourceIp, '127.0.0.1');
    }
  }
  // The AWS SDK's stage prefix works across nodes too.
  const far = clients.find((c) => c.node === 'n3');
  assert.equal((await mgmt('n1', 'POST', `/prod/%40connections/${encodeURIComponent(far.id)}`, 'staged')).status, 200);
  assert.equal((await far.client.next(3000)).text, 'staged');

  // DELETE from another node closes it there; then it is gone everywhere.
  const victim = await Client.open(`ws://127.0.0.1:${haproxy.port}/`);
  const vid = await whoami(victim);
  await waitFor(async () => NODE_IDS.includes(await nodeOf(vid)), { what: 'the victim row' });
  const home = await nodeOf(vid);
  const other = NODE_IDS.find((n) => n !== home);
  assert.equal((await mgmt(other, 'DELETE', `/@connections/${vid}`)).status, 204);
  const closed = await withTimeout(victim.closed, 3000, 'the deleted connection to close');
  assert.equal(closed.code, 1000);
  await waitFor(async () => (await redis.cli('EXISTS', `wsgw:conn:${vid}`)) === '0', { what: 'the row to go' });
  for (const n of NODE_IDS) {
    const r = await mgmt(n, 'POST', `/@connections/${vid}`, 'late');
    assert.equal(r.status, 410, `POST via ${n} to a closed connection: ${r.status} ${r.body}`);
    assert.equal(r.type, 'GoneException');
    assert.equal((await mgmt(n, 'GET', `/@connections/${vid}`)).status, 410);
    assert.equal((await mgmt(n, 'DELETE', `/@connections/${vid}`)).status, 410);
  }
  // A well-formed ID that never existed is 410 on every node; a malformed one is 400.
  assert.equal((await mgmt('n2', 'POST', '/@connections/AAAAAAAAAAAAAAAAAAAAAA', 'x')).status, 410);
  assert.equal((await mgmt('n2', 'POST', '/@connections/bad!id', 'x')).status, 400);
});

test('groups: membership set through any node, sends reach each member once, across nodes', async () => {
  const members = NODE_IDS.map((n) => clients.filter((c) => c.node === n).slice(1, 3)).flat();  // 2 per node
  for (const [i, m] of members.entries()) {
    const via = NODE_IDS[i % 3];
    const r = await mgmt(via, 'PUT', `/@groups/traders/connections/${m.id}`);
    assert.equal(r.status, 204, `PUT via ${via} for a member on ${m.node}: ${r.body}`);
  }
  const listed = JSON.parse((await mgmt('n2', 'GET', '/@groups/traders')).body);
  assert.deepEqual(listed.connections, members.map((m) => m.id).sort());
  for (const n of NODE_IDS) assert.equal((await mgmt(n, 'POST', '/@groups/traders', `tick-${n}`)).status, 200);
  let got = await drain(clients);
  for (const [i, texts] of got.entries()) {
    const expected = members.includes(clients[i]) ? ['tick-n1', 'tick-n2', 'tick-n3'] : [];
    assert.deepEqual([...texts].sort(), expected, `client ${i} on ${clients[i].node}`);
  }
  // The host API: a handler on one node adds a connection of another node and sends to the group.
  const outsider = clients.find((c) => !members.includes(c) && c.node === 'n1');
  const caller = clients.find((c) => c.node === 'n3' && !members.includes(c));
  assert.equal(await caller.client.request(JSON.stringify({ action: 'join', group: 'traders', id: outsider.id })), '0');
  assert.equal(await caller.client.request(JSON.stringify({ action: 'sendgroup', group: 'traders', data: 'from-handler' })), 'sent:0');
  got = await drain(clients);
  for (const [i, texts] of got.entries()) {
    const expected = members.includes(clients[i]) || clients[i] === outsider ? ['from-handler'] : [];
    assert.deepEqual(texts, expected, `client ${i} on ${clients[i].node}`);
  }
  // Removal through a third node; then the broadcast reaches every client once.
  assert.equal((await mgmt('n2', 'DELETE', `/@groups/traders/connections/${outsider.id}`)).status, 204);
  assert.equal((await mgmt('n3', 'POST', '/@broadcast', 'to-everyone')).status, 200);
  got = await drain(clients);
  for (const [i, texts] of got.entries()) assert.deepEqual(texts, ['to-everyone'], `client ${i} on ${clients[i].node}`);
  const after = JSON.parse((await mgmt('n1', 'GET', '/@groups/traders')).body);
  assert.ok(!after.connections.includes(outsider.id));
  // Bad input gets a clear 400, and a connection that does not exist a 410, from any node.
  const bad = await mgmt('n1', 'PUT', `/@groups/no%20spaces/connections/${outsider.id}`);
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.body).message, /group name/);
  assert.equal((await mgmt('n1', 'PUT', '/@groups/traders/connections/AAAAAAAAAAAAAAAAAAAAAA')).status, 410);
});

test('the host API pushes to connections on other nodes; a closed one is WSGW_GONE', async () => {
  const from = clients.find((c) => c.node === 'n1');
  const to = clients.find((c) => c.node === 'n2');
  assert.equal(await from.client.request(JSON.stringify({ action: 'push', to: to.id, data: 'cross-node' })), '0');
  assert.equal((await to.client.next(3000)).text, 'cross-node');
  assert.equal(await from.client.request(JSON.stringify({ action: 'push', to: 'AAAAAAAAAAAAAAAAAAAAAA', data: 'x' })), '1');
});

test('kill -9 of a node: its connections are reaped within 4 s (a 2 s node TTL), $disconnect runs once, the others carry on', async () => {
  const deadId = 'n2';
  const dead = nodes.get(deadId);
  const victims = clients.filter((c) => c.node === deadId);
  const survivors = clients.filter((c) => c.node !== deadId);
  assert.ok(victims.length > 0);
  const killedAt = Date.now();
  await dead.stop({ signal: 'SIGKILL' });
  await waitFor(async () => (await redis.cli('EXISTS', ...victims.map((v) => `wsgw:conn:${v.id}`))) === '0',
    { timeoutMs: 10000, intervalMs: 100, what: 'the dead node\'s rows to be removed' });
  const reapedMs = Date.now() - killedAt;
  assert.ok(reapedMs < 4000, `reaped after ${reapedMs} ms: the TTL and a beat (0.4 s) are 2.4 s; with the default TTL it took 5-6 s`);
  assert.equal(await redis.cli('EXISTS', `wsgw:node:${deadId}:conns`), '0');
  assert.equal(await redis.cli('SISMEMBER', 'wsgw:nodes', deadId), '0');
  // Each victim's $disconnect ran exactly once, on one of the surviving nodes, saying why.
  await waitFor(() => {
    const ids = ['n1', 'n3'].flatMap((n) => readEvents(nodes.get(n).eventsPath))
      .filter((e) => ctx(e).eventType === 'DISCONNECT').map((e) => ctx(e).connectionId);
    return victims.every((v) => ids.includes(v.id));
  }, { timeoutMs: 5000, what: 'the victims\' $disconnect events' });
  const disconnects = ['n1', 'n3'].flatMap((n) => readEvents(nodes.get(n).eventsPath)).filter((e) => ctx(e).eventType === 'DISCONNECT');
  for (const v of victims) {
    const mine = disconnects.filter((e) => ctx(e).connectionId === v.id);
    assert.equal(mine.length, 1, `${v.id} had ${mine.length} $disconnect events`);
    assert.equal(ctx(mine[0]).disconnectStatusCode, 1006);
    assert.match(ctx(mine[0]).disconnectReason, /n2.*stopped heartbeating/);
  }
  // Pushes to them are 410 through the living nodes; the group no longer lists them.
  for (const v of victims.slice(0, 3)) {
    assert.equal((await mgmt('n1', 'POST', `/@connections/${v.id}`, 'x')).status, 410);
    assert.equal((await mgmt('n3', 'GET', `/@connections/${v.id}`)).status, 410);
  }
  const traders = JSON.parse((await mgmt('n1', 'GET', '/@groups/traders')).body).connections;
  for (const v of victims) assert.ok(!traders.includes(v.id));
  // The others are unaffected: still open, and the chat still reaches each of them once.
  for (const v of victims) await withTimeout(v.client.closed, 5000, 'the load balancer to close a dead node\'s client');
  for (const s of survivors) assert.equal(s.client.closeInfo, null);
  survivors[0].client.send(JSON.stringify({ action: 'sendmessage', data: 'after-the-death' }));
  await queued(survivors[0].client, 'after-the-death');
  const got = await drain(survivors);
  for (const texts of got) assert.deepEqual(texts, ['after-the-death']);
  clients.splice(0, clients.length, ...survivors);
});

test('a Redis restart in the middle of traffic: nodes reconnect, re-register their connections and keep serving', async () => {
  const a = clients.find((c) => c.node === 'n1');
  const b = clients.find((c) => c.node === 'n3');
  // Echo traffic on every client while Redis goes away: local messages never need Redis.
  let echoed = 0, sent = 0, flowing = true;
  const traffic = (async () => {
    while (flowing) {
      await Promise.all(clients.map(async (c) => {
        const text = `echo-${sent++}`;
        assert.equal(await c.client.request(text, 5000), text);
        echoed++;
      }));
    }
  })();
  await waitFor(() => echoed >= clients.length, { timeoutMs: 5000, what: 'echo traffic to flow' });
  const live = liveNodes();
  const logged = new Map(live.map((n) => [n, nodes.get(n).lines.length]));
  await redis.stop();
  // Redis is down for real: every node has lost its subscription, and a round of echoes went on meanwhile.
  await waitFor(() => live.every((n) => nodes.get(n).lines.slice(logged.get(n)).some((l) => /lost the subscription/.test(l.msg))),
    { timeoutMs: 5000, what: 'every node to see Redis go' });
  const atOutage = echoed;
  await waitFor(() => echoed >= atOutage + clients.length, { timeoutMs: 5000, what: 'echoes while Redis is down' });
  // A group send meanwhile cannot reach the other nodes' members, and says so (it answered 200).
  const partial = await mgmt('n1', 'POST', '/@groups/nobody-here', 'while Redis is down');
  assert.equal(partial.status, 503, partial.body);
  assert.equal(partial.type, 'ServiceUnavailableException');
  assert.match(JSON.parse(partial.body).message, /reached this node's members only: the cluster's Redis is unreachable/);
  redis = await RedisServer.start(redis.port);
  flowing = false;
  await traffic;
  assert.equal(echoed, sent, 'every echo answered while Redis restarted');
  // Within a few heartbeats every live connection is back in Redis, and cross-node pushes work again.
  await waitFor(async () => {
    for (const c of clients) if ((await nodeOf(c.id)) !== c.node) return false;
    return true;
  }, { timeoutMs: 8000, intervalMs: 200, what: 'the nodes to re-register their connections' });
  await waitFor(async () => (await mgmt('n1', 'POST', `/@connections/${b.id}`, 'after-restart')).status === 200,
    { timeoutMs: 8000, intervalMs: 200, what: 'a cross-node push to succeed again' });
  const texts = [];
  for (let i = 0; i < 5 && !texts.includes('after-restart'); ++i) texts.push((await b.client.next(3000)).text);
  assert.ok(texts.includes('after-restart'));
  b.client.queue.splice(0);
  // The chat's group was re-registered too: a message from n1 reaches n3's clients.
  a.client.send(JSON.stringify({ action: 'sendmessage', data: 'chat-after-restart' }));
  await queued(a.client, 'chat-after-restart');
  const got = await drain(clients);
  for (const [i, t] of got.entries()) assert.deepEqual(t.filter((x) => x === 'chat-after-restart'), ['chat-after-restart'], `client ${i}`);
  for (const n of ['n1', 'n3']) {
    const ready = await fetch(nodes.get(n).managementUrl + '/readyz');
    assert.equal(ready.status, 200, await ready.text());
  }
});

// A drain that ends with $disconnects not run (handlers still running at --drain-seconds) must not leave
// the cluster: the node stops heartbeating, a live node reaps it and runs each of them once. Before, it left
// the cluster anyway, and its rows, group memberships and $disconnects were left for no one.
test('a SIGTERM drain that ends before the handlers do leaves its connections to be reaped: each $disconnect runs once', async () => {
  const node = await Gateway.start({ routes: clusterRoutes, plugins: ['chat', 'echo', 'probe'], nodeId: 'n4', workers: 8,
    extraArgs: [...clusterArgs(), '--access-log', 'off', '--drain-seconds', '1'] });
  nodes.set('n4', node);
  const victims = [];
  for (let i = 0; i < 4; ++i) {
    const client = await Client.open(node.url);
    victims.push({ client, id: await whoami(client) });
  }
  for (const v of victims) v.client.send(JSON.stringify({ action: 'sleep', ms: 4000 }));
  const sleepsSeen = () => readEvents(node.eventsPath).filter((e) => ctx(e).eventType === 'MESSAGE' && /sleep/.test(e.body ?? '')).length;
  try {
    await waitFor(() => sleepsSeen() === 4, { timeoutMs: 10000, what: 'the four sleeps to be running (8 workers)' });
  } catch (err) {
    err.message += `; sleeps seen ${sleepsSeen()}; the node's last lines: ${JSON.stringify(node.lines.slice(-15))}`;
    throw err;
  }
  await node.stop();
  assert.ok(node.lines.some((l) => /another node will reap them/.test(l.msg ?? '')), 'the node said it left them to a reaper');
  await waitFor(async () => (await redis.cli('EXISTS', ...victims.map((v) => `wsgw:conn:${v.id}`))) === '0',
    { timeoutMs: 15000, intervalMs: 100, what: 'the drained node\'s rows to be reaped' });
  await waitFor(() => {
    const ids = ['n1', 'n3', 'n4'].flatMap((n) => readEvents(nodes.get(n).eventsPath))
      .filter((e) => ctx(e).eventType === 'DISCONNECT').map((e) => ctx(e).connectionId);
    return victims.every((v) => ids.includes(v.id));
  }, { timeoutMs: 5000, what: 'the victims\' $disconnect events' });
  const disconnects = ['n1', 'n3', 'n4'].flatMap((n) => readEvents(nodes.get(n).eventsPath)).filter((e) => ctx(e).eventType === 'DISCONNECT');
  for (const v of victims) assert.equal(disconnects.filter((e) => ctx(e).connectionId === v.id).length, 1, `${v.id}: one $disconnect`);
  nodes.delete('n4');
});

// A node paused (SIGSTOP) past the node TTL is reaped by another, which runs its connections' $disconnect.
// When it comes back it must not register them again (their $disconnect would then run a second time when
// they close): it closes them with 1012, without $disconnect, and goes on serving new clients.
test('a node paused past its TTL and reaped closes its reaped connections when it wakes, and no $disconnect runs twice', async () => {
  const node = await Gateway.start({ routes: clusterRoutes, plugins: ['chat', 'echo', 'probe'], nodeId: 'n5',
    extraArgs: [...clusterArgs(), '--access-log', 'off'] });
  nodes.set('n5', node);
  const victims = [];
  for (let i = 0; i < 3; ++i) {
    const client = await Client.open(node.url);
    victims.push({ client, id: await whoami(client) });
  }
  await new Promise((r) => setTimeout(r, 2100));  // older than the 2 s a fresh row is given to be written
  node.proc.kill('SIGSTOP');
  try {
    await waitFor(async () => (await redis.cli('EXISTS', ...victims.map((v) => `wsgw:conn:${v.id}`))) === '0',
      { timeoutMs: 15000, intervalMs: 100, what: 'the paused node\'s rows to be reaped' });
  } finally {
    node.proc.kill('SIGCONT');
  }
  for (const v of victims) {
    const info = await withTimeout(v.client.closed, 10000, 'the woken node to close its reaped connection');
    assert.equal(info.code, 1012, JSON.stringify(info));
  }
  const c = await Client.open(node.url);
  assert.match(await whoami(c), /^[A-Za-z0-9_-]{22}$/, 'the woken node serves new clients');
  await c.close();
  await new Promise((r) => setTimeout(r, 1000));  // a second $disconnect, if any, would have run by now
  const disconnects = ['n1', 'n3', 'n5'].flatMap((n) => readEvents(nodes.get(n).eventsPath)).filter((e) => ctx(e).eventType === 'DISCONNECT');
  for (const v of victims) assert.equal(disconnects.filter((e) => ctx(e).connectionId === v.id).length, 1, `${v.id}: one $disconnect`);
  await node.stop();
  nodes.delete('n5');
});

// Two nodes started at the same moment with one --node-id: the claim is atomic, so one runs and the other
// is refused (before, both could pass the check and run, and pushes to one's connections got 410).
test('two nodes started at once with the same --node-id: exactly one runs', async () => {
  const startTwin = () => Gateway.start({ routes: clusterRoutes, plugins: ['chat', 'echo', 'probe'], nodeId: 'twin',
    extraArgs: [...clusterArgs(), '--access-log', 'off'] });
  const results = await Promise.allSettled([startTwin(), startTwin()]);
  const running = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  try {
    assert.equal(running.length, 1, results.map((r) => (r.status === 'rejected' ? String(r.reason).slice(0, 300) : 'running')).join(' | '));
    assert.match(String(results.find((r) => r.status === 'rejected').reason), /already uses this ID/);
  } finally {
    for (const g of running) await g.stop();
  }
});

test('bad cluster settings stop the start with a clear message', async () => {
  const dir = makeTempDir();
  const unreachable = await runExpectingExit({ routes: clusterRoutes(dir), plugins: ['chat', 'echo', 'probe'],
    extraArgs: ['--cluster', 'redis://127.0.0.1:1'] });
  assert.notEqual(unreachable.code, 0);
  assert.match(unreachable.stderr, /--cluster redis:\/\/127\.0\.0\.1:1: cannot reach Redis/);
  const malformed = await runExpectingExit({ routes: clusterRoutes(dir), plugins: ['chat'], extraArgs: ['--cluster', 'http://x'] });
  assert.notEqual(malformed.code, 0);
  assert.match(malformed.stderr, /--cluster: expected redis:\/\/HOST:PORT/);
  // A second node with the ID of a live one is refused (after waiting out the heartbeat's TTL).
  const clash = await runExpectingExit({ routes: clusterRoutes(dir), plugins: ['chat', 'echo', 'probe'], timeoutMs: 15000,
    extraArgs: [...clusterArgs(), '--node-id', 'n1'] });
  assert.notEqual(clash.code, 0);
  assert.match(clash.stderr, /--node-id n1: a live node of this cluster already uses this ID/);
});
