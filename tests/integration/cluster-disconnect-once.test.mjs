// Exactly one $disconnect cluster-wide for every connection, in the three cases where a node used to run
// one that the node reaping it ran as well (docs/cluster.md): a node paused (SIGSTOP) past the node TTL
// with $disconnects queued, a SIGTERM while Redis is unreachable, and a kill -9 just after a $disconnect
// returned, while the node's table writer waited on Redis. Each test starts a real redis-server and real
// nodes, and counts each connection's $disconnect events in every node's probe log.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Gateway, Client, whoami, readEvents, ctx, makeTempDir, waitFor, withTimeout } from './harness.mjs';
import { RedisServer } from './redis-server.mjs';

const started = [];  // every node and redis-server, stopped at the end whatever happened

// $disconnect goes to the probe, which records it (and then takes `disconnectDelayMs`); every node also
// writes its access log, whose DISCONNECT line comes once the handler has returned.
function routes(disconnectDelayMs) {
  return (dir) => ({
    routeSelectionExpression: '$request.body.action',
    handlers: { probe: { config: { log: path.join(dir, 'events.jsonl'), disconnectDelayMs } } },
    routes: {
      $disconnect: { handler: 'probe' },
      whoami: { handler: 'probe', routeResponse: true },
      sleep: { handler: 'probe', routeResponse: true },
      $default: { handler: 'probe', routeResponse: true },
    },
  });
}

// A 2 s node TTL (5 s by default): each test waits for a reap, 3 s sooner.
async function startNode(redis, id, { workers = 4, disconnectDelayMs = 0, extraArgs = [] } = {}) {
  const dir = makeTempDir();
  const gw = await Gateway.start({ routes: routes(disconnectDelayMs), plugins: ['probe'], nodeId: id, workers, dir,
    extraArgs: ['--cluster', redis.url, '--cluster-node-ttl', '2', '--access-log', path.join(dir, 'access.log'), ...extraArgs] });
  gw.accessLogPath = path.join(dir, 'access.log');
  started.push(gw);
  return gw;
}

async function startRedis(port, options) {
  const redis = await RedisServer.start(port, options);
  started.push(redis);
  return redis;
}

async function connectTo(node, redis, n) {
  const list = [];
  for (let i = 0; i < n; ++i) {
    const client = await Client.open(node.url);
    list.push({ client, id: await whoami(client) });
  }
  // Rows confirmed in Redis: the victims' $disconnects ask Redis, not the writer's queue.
  await waitFor(async () => {
    for (const v of list) if ((await redis.cli('HGET', `wsgw:conn:${v.id}`, 'node')) !== node.nodeId) return false;
    return true;
  }, { timeoutMs: 5000, what: `the rows of ${node.nodeId}'s connections in Redis` });
  return list;
}

// How many times each connection's $disconnect ran, over every node's probe log.
function disconnectCounts(nodes, ids) {
  const events = nodes.flatMap((n) => readEvents(n.eventsPath)).filter((e) => ctx(e).eventType === 'DISCONNECT');
  return Object.fromEntries(ids.map((id) => [id, events.filter((e) => ctx(e).connectionId === id).length]));
}

function disconnectedOn(node, id) {
  return readEvents(node.eventsPath).some((e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === id);
}

function accessLogged(node, id) {
  let text = '';
  try {
    text = fs.readFileSync(node.accessLogPath, 'utf8');
  } catch {
    return false;
  }
  return text.split('\n').some((l) => l.includes(id) && l.includes('DISCONNECT'));
}

after(async () => {
  for (const x of started.reverse()) {
    if (x instanceof Gateway) {
      if (x.alive()) x.proc.kill('SIGCONT');
      await x.stop({ signal: 'SIGKILL' }).catch(() => {});
    } else {
      await x.stop();
    }
  }
});

// A node paused past the node TTL while its only worker sleeps in a handler and three $disconnects wait
// behind it: the reaper adopts the rows and runs those three. When the node wakes, its worker reaches
// the queued ones: each asks Redis whose row it is now, finds it another node's, and does not run.
test('a node paused past the node TTL with $disconnects queued: the reaper runs them, the woken node does not', async () => {
  const redis = await startRedis();
  const reaper = await startNode(redis, 'r1');
  const paused = await startNode(redis, 'p1', { workers: 1 });
  const [blocker] = await connectTo(paused, redis, 1);
  const victims = await connectTo(paused, redis, 3);
  blocker.client.send(JSON.stringify({ action: 'sleep', ms: 5000 }));
  await waitFor(() => readEvents(paused.eventsPath).some((e) => ctx(e).routeKey === 'sleep' && ctx(e).connectionId === blocker.id),
    { timeoutMs: 5000, what: 'the sleep to hold the only worker' });
  for (const v of victims) await v.client.close();
  // Each victim is out of the node's registry (410), which happens with the queueing of its $disconnect.
  await waitFor(async () => {
    for (const v of victims) if ((await fetch(`${paused.managementUrl}/@connections/${v.id}`)).status !== 410) return false;
    return true;
  }, { timeoutMs: 5000, what: 'the victims\' $disconnects to be queued behind the sleep' });
  assert.deepEqual(victims.filter((v) => disconnectedOn(paused, v.id)).map((v) => v.id), [], 'none ran before the pause');
  paused.proc.kill('SIGSTOP');
  try {
    await waitFor(() => victims.every((v) => disconnectedOn(reaper, v.id)),
      { timeoutMs: 15000, intervalMs: 100, what: 'the reaper to run the paused node\'s $disconnects' });
  } finally {
    paused.proc.kill('SIGCONT');
  }
  // The woken node's worker finishes the sleep, then reaches each queued $disconnect: it runs it (the old
  // behaviour) or says it was not run here.
  const settled = (v) => disconnectedOn(paused, v.id) ||
    paused.lines.some((l) => /not run here/.test(l.msg ?? '') && l.connectionId === v.id);
  await waitFor(() => victims.every(settled), { timeoutMs: 20000, intervalMs: 100, what: 'the woken node to reach its queued $disconnects' });
  const counts = disconnectCounts([reaper, paused], victims.map((v) => v.id));
  assert.deepEqual(Object.values(counts), [1, 1, 1], JSON.stringify(counts));
  // The blocker's connection was reaped too: the woken node closes it without a second $disconnect.
  const closed = await withTimeout(blocker.client.closed, 10000, 'the woken node to close the reaped blocker');
  assert.equal(closed.code, 1012);
  assert.equal(disconnectCounts([reaper, paused], [blocker.id])[blocker.id], 1);
});

// SIGTERM while Redis is down: the draining node cannot confirm that the rows are still its own (another
// node may be reaping it), so it runs none of their $disconnects and leaves the cluster listed, for a
// reaper. Redis comes back with its data (an append-only file) and the reaper runs each one, once. Before,
// the node ran them, its removals were lost, and the reaper ran them again.
test('SIGTERM while Redis is unreachable: each $disconnect runs once, on the reaper, once Redis is back', async () => {
  const dataDir = makeTempDir();
  const persistent = { extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dataDir] };
  let redis = await startRedis(undefined, persistent);
  const reaper = await startNode(redis, 'r2');
  const stopping = await startNode(redis, 's2', { extraArgs: ['--drain-seconds', '2'] });
  const victims = await connectTo(stopping, redis, 3);
  await redis.stop();
  const closes = victims.map((v) => withTimeout(v.client.closed, 10000, 'the drain to close the victim'));
  await stopping.stop({ timeoutMs: 20000 });
  for (const c of await Promise.all(closes)) assert.equal(c.code, 1001);
  redis = await startRedis(redis.port, persistent);
  await waitFor(async () => (await redis.cli('EXISTS', ...victims.map((v) => `wsgw:conn:${v.id}`))) === '0',
    { timeoutMs: 15000, intervalMs: 100, what: 'the stopped node\'s rows to be reaped once Redis is back' });
  // A row goes after its $disconnect has run: every one that will run has run.
  const counts = disconnectCounts([reaper, stopping], victims.map((v) => v.id));
  assert.deepEqual(Object.values(counts), [1, 1, 1], JSON.stringify(counts));
  assert.equal(await redis.cli('SISMEMBER', 'wsgw:nodes', 's2'), '0');
});

// Sends EVAL of a script that keeps Redis busy for `ms` on a socket of its own (its answer comes at the end).
function busyRedis(redis, ms) {
  const script = `local t = redis.call('TIME') local until_ = t[1] * 1000000 + t[2] + ${ms * 1000} ` +
    `repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= until_ return 1`;
  const sock = net.connect({ host: '127.0.0.1', port: redis.port });
  const answered = new Promise((resolve, reject) => { sock.once('data', resolve); sock.once('error', reject); });
  sock.write(`*3\r\n$4\r\nEVAL\r\n$${Buffer.byteLength(script)}\r\n${script}\r\n$1\r\n0\r\n`);
  return answered.finally(() => sock.destroy());
}

// kill -9 right after a $disconnect's handler returned, while the node's table writer waits on Redis (busy
// with a long script) for an insert: the removal, sent by the worker itself on its own connection, is in
// Redis's socket already and runs when Redis is free. Before, it was queued behind the writer's batch and
// died with the process, and the reaper ran the $disconnect again.
test('kill -9 just after a $disconnect returned, its removal not yet answered by Redis: the reaper does not run it again', async () => {
  const redis = await startRedis();
  const reaper = await startNode(redis, 'r3');
  const killed = await startNode(redis, 'k3', { disconnectDelayMs: 1000 });
  const [victim] = await connectTo(killed, redis, 1);
  await victim.client.close();
  await waitFor(() => disconnectedOn(killed, victim.id), { timeoutMs: 5000, what: 'the victim\'s $disconnect to start' });
  // Its owner was confirmed as it started; now Redis is kept busy, and a new connection's insert waits in
  // the writer (its $connect needs nothing from Redis).
  const busy = busyRedis(redis, 3000);
  const bystander = await Client.open(killed.url);
  bystander.ws.on('error', () => {});
  await waitFor(() => accessLogged(killed, victim.id), { timeoutMs: 5000, intervalMs: 10, what: 'the victim\'s $disconnect to return' });
  await killed.stop({ signal: 'SIGKILL' });
  await busy;
  await waitFor(async () => (await redis.cli('SISMEMBER', 'wsgw:nodes', 'k3')) === '0',
    { timeoutMs: 15000, intervalMs: 100, what: 'the killed node to be reaped' });
  await waitFor(async () => (await redis.cli('EXISTS', `wsgw:conn:${victim.id}`)) === '0',
    { timeoutMs: 5000, what: 'the victim\'s row to be gone' });
  const counts = disconnectCounts([reaper, killed], [victim.id]);
  assert.equal(counts[victim.id], 1, JSON.stringify(counts));
});

// SIGTERM while the node's subscriber is reconnecting to a Redis that went away, its connect still under
// way (here a black hole on Redis's port: a listener that never accepts, its queue full, so the connect
// neither completes nor fails). hiredis frees such a context without calling back; the subscriber then
// freed it a second time at the stop, and the gateway died of SIGSEGV instead of exiting 0.
test('SIGTERM while the subscriber\'s reconnect to a vanished Redis is still connecting: a clean exit', async () => {
  const redis = await startRedis();
  const node = await startNode(redis, 'h4');
  await redis.stop();
  const hole = spawn('python3', ['-c', `
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', ${redis.port})); s.listen(0)
fill = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False); c.connect_ex(('127.0.0.1', ${redis.port})); fill.append(c)
print('ready', flush=True); time.sleep(30)`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await withTimeout(new Promise((resolve) => hole.stdout.once('data', resolve)), 5000, 'the black hole to listen');
    // The subscriber retries every 0.5 s: a connect into the hole is under way by now.
    await waitFor(() => node.lines.some((l) => /lost the subscription/.test(l.msg ?? '')), { what: 'the node to lose its subscription' });
    await new Promise((r) => setTimeout(r, 1200));  // past two reconnect attempts, not a wait for a condition
    await node.stop();  // throws unless the gateway exits cleanly
  } finally {
    hole.kill('SIGKILL');
  }
});
