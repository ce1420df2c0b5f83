#!/usr/bin/env node
// Group fan-out of Azure Web PubSub clients (docs/webpubsub.md, issue 21): N subscribers on one subprotocol
// join a group, one publisher sends M messages to it with acks (a window of 64 in flight), and the time until
// every subscriber has every message gives the messages delivered per second. On the reliable subprotocol
// the subscribers send sequenceAck as the client SDK does (after every 300 messages, and at the end), so
// the acks' cost is included. Tokens are signed here with the access key (HS256, as the server SDK signs
// them). Needs a running wsgw whose routes.json has "webPubSub": {"hubs": [HUB], "accessKeys": [KEY]}.
//
//   node tools/bench/webpubsub-fanout.mjs --port 8080 --key KEY [--hub chat] [--subscribers 1000]
//        [--messages 200] [--protocol json|reliable] [--body-bytes 64]
// Prints one JSON line. The Node client is often the bottleneck on a 2-core machine: compare protocols
// with the same client, not with wsgw-load's numbers.
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'tests', 'integration', 'package.json'));
const WebSocket = require('ws');

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) =>
  (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const port = Number(args.port ?? 8080);
const key = args.key ?? (() => { throw new Error('--key KEY is required (one of routes.json webPubSub.accessKeys)'); })();
const hub = args.hub ?? 'chat';
const subscribers = Number(args.subscribers ?? 1000);
const messages = Number(args.messages ?? 200);
const reliable = (args.protocol ?? 'json') === 'reliable';
const bodyBytes = Number(args['body-bytes'] ?? 64);
const subprotocol = reliable ? 'json.reliable.webpubsub.azure.v1' : 'json.webpubsub.azure.v1';
const group = 'bench';

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
    ws.once('open', () => resolve(ws));
  });
}

const received = new Array(subscribers).fill(0);
let remaining = subscribers * messages;
let allDone;
const done = new Promise((resolve) => { allDone = resolve; });

const subs = [];
for (let i = 0; i < subscribers; ++i) {
  const ws = await open(`sub-${i}`, ['webpubsub.joinLeaveGroup']);
  let lastSeq = 0, ackedSeq = 0;
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.sequenceId) lastSeq = m.sequenceId;
    if (m.type === 'message' && m.from === 'group') {
      ++received[i];
      if (--remaining === 0) allDone();
      if (reliable && (lastSeq - ackedSeq >= 300 || received[i] === messages)) {
        ws.send(JSON.stringify({ type: 'sequenceAck', sequenceId: lastSeq }));
        ackedSeq = lastSeq;
      }
    }
  });
  subs.push(ws);
}
await Promise.all(subs.map((ws, i) => new Promise((resolve) => {
  const onAck = (data) => { const m = JSON.parse(data.toString()); if (m.type === 'ack' && m.ackId === 1) { ws.off('message', onAck); resolve(); } };
  ws.on('message', onAck);
  ws.send(JSON.stringify({ type: 'joinGroup', group, ackId: 1 }));
})));

const publisher = await open('publisher', ['webpubsub.sendToGroup']);
const payload = 'x'.repeat(Math.max(1, bodyBytes));
let nextAck = 1, acked = 0, sent = 0;
const allAcked = new Promise((resolve) => {
  publisher.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.type !== 'ack') return;
    if (!m.success) throw new Error(`publish refused: ${JSON.stringify(m.error)}`);
    if (++acked === messages) resolve();
    pump();
  });
});
function pump() {
  while (sent < messages && sent - acked < 64) {
    publisher.send(JSON.stringify({ type: 'sendToGroup', group, ackId: nextAck++, noEcho: true, dataType: 'text', data: payload }));
    ++sent;
  }
}
const started = process.hrtime.bigint();
pump();
await Promise.all([allAcked, done]);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ scenario: 'webpubsub-fanout', protocol: subprotocol, subscribers, messages, bodyBytes,
  delivered: subscribers * messages, seconds: Number(seconds.toFixed(3)),
  deliveredPerSecond: Math.round((subscribers * messages) / seconds) }));
for (const ws of [...subs, publisher]) ws.terminate();
