#!/usr/bin/env node
// Azure Web PubSub benchmarks (docs/webpubsub.md, issue 21), loopback only, bounded in count and time.
//
// --mode fanout (the default): group fan-out. N subscribers on one subprotocol join a group, one publisher
// sends M messages to it with acks (a window of 64 in flight), and the time until every subscriber has every
// message gives the messages delivered per second. On the reliable subprotocol the subscribers send
// sequenceAck after every 300 messages and after the last one (the client SDK sends one a second when its
// number has moved, which is no more often at these rates), so the acks' cost is included.
//
// --mode recovery-memory: what a reliable connection waiting to be recovered holds in the gateway, read from
// the gateway's RSS (/proc/PID/status, --pid). B batches (--batches, default 6) of N clients, one after the
// other: each batch joins a group of its own, is sent M messages that every client receives and acknowledges
// (a sequenceAck, then a ping whose pong says the ack was read), and then has its sockets reset (no close
// frame: a dropped network), so the gateway keeps each connection for recoveryWindowSeconds. RSS counts what
// the allocator keeps as well as what is in use, so the first batches warm it up (their growth is mostly
// sockets and buffers freed at the cut but kept by the allocator, less with each batch); the growth per
// connection from the first cut to the last is `waitingAfterFirst`, over the last two batches `waitingLastTwo`.
// Run the same with --protocol json as the control: plain connections end at the reset and keep nothing, so
// the difference is what a waiting connection holds.
// Then K messages (--kept) go to the last batch's group while it waits: each of its connections keeps every
// one, and the growth over N x K is `bytesPerKeptMessage`. Use a fresh gateway for each run, with a
// recoveryWindowSeconds that outlasts the run.
//
// Tokens are signed here with the access key (HS256, as the server SDK signs them). Needs a running wsgw
// whose routes.json has "webPubSub": {"hubs": [HUB], "accessKeys": [KEY]}.
//
//   node tools/bench/webpubsub-fanout.mjs --port 8080 --key KEY [--hub chat] [--subscribers 1000]
//        [--messages 200] [--protocol json|reliable] [--body-bytes 64] [--pid PID]
// (with --pid, fanout also reports the gateway's CPU seconds over the measured time, beside the client's)
//   node tools/bench/webpubsub-fanout.mjs --mode recovery-memory --pid PID --port 8080 --key KEY
//        [--subscribers 1000] [--batches 6] [--messages 50] [--kept 0] [--protocol reliable|json] [--body-bytes 64]
// Prints one JSON line. The Node client is often the bottleneck on a 2-core machine: compare protocols
// with the same client, not with wsgw-load's numbers.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'tests', 'integration', 'package.json'));
const WebSocket = require('ws');

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) =>
  (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
function fail(message) { console.error(`webpubsub-fanout: ${message}`); process.exit(2); }
function intArg(name, fallback, min, max) {
  const v = Number(args[name] ?? fallback);
  if (!Number.isInteger(v) || v < min || v > max) fail(`--${name} must be an integer from ${min} to ${max} (got ${args[name]})`);
  return v;
}
const mode = args.mode ?? 'fanout';
if (!['fanout', 'recovery-memory'].includes(mode)) fail(`--mode is fanout or recovery-memory (got ${mode})`);
const port = intArg('port', 8080, 1, 65535);
const key = args.key ?? fail('--key KEY is required (one of routes.json webPubSub.accessKeys)');
const hub = args.hub ?? 'chat';
const subscribers = intArg('subscribers', 1000, 1, 20000);
const messages = intArg('messages', mode === 'fanout' ? 200 : 50, mode === 'fanout' ? 1 : 0, 100000);
const protocol = args.protocol ?? (mode === 'fanout' ? 'json' : 'reliable');
if (!['json', 'reliable'].includes(protocol)) fail(`--protocol is json or reliable (got ${protocol})`);
const reliable = protocol === 'reliable';
const bodyBytes = intArg('body-bytes', 64, 1, 1 << 20);
const kept = intArg('kept', 0, 0, 100000);
const batches = intArg('batches', 6, 2, 20);
const pid = mode === 'recovery-memory' || args.pid !== undefined ? intArg('pid', undefined, 1, 1 << 30) : null;
const subprotocol = reliable ? 'json.reliable.webpubsub.azure.v1' : 'json.webpubsub.azure.v1';
const group = 'bench';  // fanout's; recovery-memory uses bench-1 and bench-2
const kDeadlineMs = 120000;  // the whole run; a stuck run fails instead of hanging
setTimeout(() => fail(`not done within ${kDeadlineMs / 1000} s`), kDeadlineMs).unref();

function token(userId, roles) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: userId, role: roles, iat: now, exp: now + 3600,
    aud: `http://127.0.0.1:${port}/client/hubs/${hub}` })}`;
  return `${body}.${crypto.createHmac('sha256', key).update(body).digest('base64url')}`;
}

function open(userId, roles) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/client/hubs/${hub}?access_token=${token(userId, roles)}`, subprotocol);
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`upgrade answered HTTP ${res.statusCode}`)));
    ws.once('open', () => resolve(ws));
  });
}

// Opens the subscribers and joins each to the group; `onData(i, m, ws)` sees every message after the join.
async function openSubscribers(prefix, group, onData) {
  const subs = [];
  for (let i = 0; i < subscribers; ++i) {
    const ws = await open(`${prefix}-sub-${i}`, ['webpubsub.joinLeaveGroup']);
    ws.on('message', (data) => onData(i, JSON.parse(data.toString()), ws));
    subs.push(ws);
  }
  await Promise.all(subs.map((ws) => new Promise((resolve) => {
    const onAck = (data) => { const m = JSON.parse(data.toString()); if (m.type === 'ack' && m.ackId === 1) { ws.off('message', onAck); resolve(); } };
    ws.on('message', onAck);
    ws.send(JSON.stringify({ type: 'joinGroup', group, ackId: 1 }));
  })));
  return subs;
}

// Sends `count` messages to `group`, at most 64 unacknowledged; resolves when all are acknowledged. AckIds
// go on counting across calls (the gateway answers a repeated one "Duplicate").
let nextAckId = 1;
async function publish(publisher, group, count) {
  const payload = 'x'.repeat(bodyBytes);
  let acked = 0, sent = 0;
  const pump = () => {
    while (sent < count && sent - acked < 64) {
      publisher.send(JSON.stringify({ type: 'sendToGroup', group, ackId: nextAckId++, noEcho: true, dataType: 'text', data: payload }));
      ++sent;
    }
  };
  if (count === 0) return;
  await new Promise((resolve, reject) => {
    const onMessage = (data) => {
      const m = JSON.parse(data.toString());
      if (m.type !== 'ack') return;
      if (!m.success) reject(new Error(`publish refused: ${JSON.stringify(m.error)}`));
      if (++acked === count) { publisher.off('message', onMessage); resolve(); }
      pump();
    };
    publisher.on('message', onMessage);
    pump();
  });
}

async function fanout() {
  let remaining = subscribers * messages;
  let allDone;
  const done = new Promise((resolve) => { allDone = resolve; });
  const received = new Array(subscribers).fill(0);
  const lastSeq = new Array(subscribers).fill(0), ackedSeq = new Array(subscribers).fill(0);
  const subs = await openSubscribers('fanout', group, (i, m, ws) => {
    if (m.sequenceId) lastSeq[i] = m.sequenceId;
    if (m.type !== 'message' || m.from !== 'group') return;
    ++received[i];
    if (--remaining === 0) allDone();
    if (reliable && (lastSeq[i] - ackedSeq[i] >= 300 || received[i] === messages)) {
      ws.send(JSON.stringify({ type: 'sequenceAck', sequenceId: lastSeq[i] }));
      ackedSeq[i] = lastSeq[i];
    }
  });
  const publisher = await open('publisher', ['webpubsub.sendToGroup']);
  const started = process.hrtime.bigint(), clientCpu = process.cpuUsage(), gatewayCpu = pid && cpuSeconds();
  await Promise.all([publish(publisher, group, messages), done]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { user, system } = process.cpuUsage(clientCpu);
  const cpu = { clientCpuSeconds: Number(((user + system) / 1e6).toFixed(2)),
                ...(pid ? { gatewayCpuSeconds: Number((cpuSeconds() - gatewayCpu).toFixed(2)) } : {}) };
  console.log(JSON.stringify({ scenario: 'webpubsub-fanout', protocol: subprotocol, subscribers, messages, bodyBytes,
    delivered: subscribers * messages, seconds: Number(seconds.toFixed(3)),
    deliveredPerSecond: Math.round((subscribers * messages) / seconds), ...cpu }));
  for (const ws of [...subs, publisher]) ws.terminate();
}

// The gateway's CPU time (user + system, all threads) from /proc/PID/stat, in clock ticks of 1/100 s.
const cpuSeconds = () => {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const descriptors = () => fs.readdirSync(`/proc/${pid}/fd`).length;

async function until(condition, what) {
  const deadline = Date.now() + 30000;
  while (!condition()) {
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// One batch of `subscribers` clients in group `group`: connected, sent `messages` they receive and (reliable)
// acknowledge, then reset. Returns the gateway's RSS while they were connected and once it has closed their sockets.
async function connectAndCut(batch, group, publisher) {
  const received = new Array(subscribers).fill(0), lastSeq = new Array(subscribers).fill(0);
  const pongs = new Set();
  const subs = await openSubscribers(`b${batch}`, group, (i, m) => {
    if (m.sequenceId) lastSeq[i] = m.sequenceId;
    if (m.type === 'message' && m.from === 'group') ++received[i];
    if (m.type === 'pong') pongs.add(i);
  });
  await publish(publisher, group, messages);
  await until(() => received.every((n) => n === messages), `every subscriber to receive ${messages} messages`);
  if (reliable) {
    // Messages on a connection are read in order: the pong comes after the ack has been taken.
    subs.forEach((ws, i) => { ws.send(JSON.stringify({ type: 'sequenceAck', sequenceId: lastSeq[i] })); ws.send('{"type":"ping"}'); });
    await until(() => pongs.size === subscribers, 'a pong on every connection after its sequenceAck');
  }
  const connected = { rssKiB: rssKiB(), fds: descriptors() };
  for (const ws of subs) ws._socket.resetAndDestroy();
  // The gateway has let go of the sockets (the connections themselves stay, for recovery).
  await until(() => descriptors() <= connected.fds - subscribers, 'the gateway to close the reset sockets');
  return { connectedKiB: connected.rssKiB, cutKiB: rssKiB() };
}

async function recoveryMemory() {
  const publisher = await open('publisher', ['webpubsub.sendToGroup']);
  const startKiB = rssKiB();
  const batchRss = [];
  for (let b = 1; b <= batches; ++b) batchRss.push(await connectAndCut(b, `bench-${b}`, publisher));
  // Sent while the last batch waits: every one of its connections keeps each of these (the publisher's ack
  // comes after the group send has been queued to every member).
  await publish(publisher, `bench-${batches}`, kept);
  const keptKiB = rssKiB();
  const last = batchRss.at(-1);
  const bytes = (kib) => Math.round((kib * 1024) / subscribers);
  console.log(JSON.stringify({ scenario: 'webpubsub-recovery-memory', protocol: subprotocol, subscribers, batches, messages, kept, bodyBytes,
    rssKiB: { start: startKiB, cutAfterBatch: batchRss.map((r) => r.cutKiB), kept: keptKiB },
    bytesPerConnection: { connectedFirst: bytes(batchRss[0].connectedKiB - startKiB),
                          waitingAfterFirst: bytes((last.cutKiB - batchRss[0].cutKiB) / (batches - 1)),
                          ...(batches >= 3 ? { waitingLastTwo: bytes((last.cutKiB - batchRss.at(-3).cutKiB) / 2) } : {}),
                          keptMessages: bytes(keptKiB - last.cutKiB) },
    bytesPerKeptMessage: kept ? Math.round(((keptKiB - last.cutKiB) * 1024) / (subscribers * kept)) : null }));
  publisher.terminate();
}

await (mode === 'fanout' ? fanout() : recoveryMemory());
