// A proxy backend named by a host name, with the gateway's DNS under the test's control: the gateway runs in
// a mount namespace of its own where /etc/resolv.conf names a tiny DNS server of this test (UDP, on a
// loopback address of its own), which answers one name, says NXDOMAIN for another and never answers a third.
// libwebsockets 4.1.6 looks a name up with a blocking getaddrinfo on the network thread; the gateway looks it
// up on a resolver thread instead. So while one client's backend lookup hangs, another client of the same
// (only) network thread is answered at once; the waiting client gets 502 naming DNS at the lookup's
// deadline; a name the fake server answers is connected to and relayed, the backend seeing that name as
// the Host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { Client, Gateway, eventsOf, makeTempDir, openExpectingRefusal, probeRoutes, sqliteRows, waitFor, withTimeout } from './harness.mjs';

const ANSWERED = 'backend.wsgw-dns.test';  // A 127.0.0.1
// Two addresses each: the first one refuses connections (nothing listens on 127.0.0.2), then the backend's;
// and two that both refuse.
const SECOND_WORKS = 'second.wsgw-dns.test';  // A 127.0.0.2, A 127.0.0.1
const NONE_WORKS = 'none.wsgw-dns.test';      // A 127.0.0.2, A 127.0.0.3
const REFUSING = 'refusing.wsgw-dns.test';    // A 127.0.0.4, A 127.0.0.1: both reach a server that answers 403
const ADDRESSES = {
  [ANSWERED]: [[127, 0, 0, 1]],
  [SECOND_WORKS]: [[127, 0, 0, 2], [127, 0, 0, 1]],
  [NONE_WORKS]: [[127, 0, 0, 2], [127, 0, 0, 3]],
  [REFUSING]: [[127, 0, 0, 4], [127, 0, 0, 1]],
};
const MISSING = 'missing.wsgw-dns.test';   // NXDOMAIN
const HUNG = 'hung.wsgw-dns.test';         // never answered
const HUNG_TOO = 'hung-too.wsgw-dns.test'; // never answered either (counted apart from HUNG's late retries)
const DNS_DEADLINE_MS = 5000;              // the gateway's bound on a lookup (docs/backends.md)

// --- the fake DNS server -------------------------------------------------------------------------------
const queries = [];  // {name, type} of every question the gateway asked

function questionOf(msg) {
  const labels = [];
  let off = 12;
  while (off < msg.length && msg[off] !== 0) {
    labels.push(msg.subarray(off + 1, off + 1 + msg[off]).toString('ascii'));
    off += 1 + msg[off];
  }
  const end = off + 5;  // the zero label, QTYPE, QCLASS
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(off + 1), end };
}

function answerFor(msg, q) {
  const header = Buffer.alloc(12);
  msg.copy(header, 0, 0, 2);  // the query's ID
  const known = q.name in ADDRESSES;
  const addresses = known && q.type === 1 ? ADDRESSES[q.name] : [];  // A records; AAAA: none (NOERROR, no answer)
  header.writeUInt16BE(0x8180 | (known ? 0 : 3), 2);  // response, recursion desired+available; NXDOMAIN if unknown
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addresses.length, 6);
  const question = msg.subarray(12, q.end);
  const answers = addresses.map((ip) => Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, ...ip]));
  return Buffer.concat([header, question, ...answers]);
}

async function startDns() {
  const address = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}.53`;
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, from) => {
    if (msg.length < 17) return;
    const q = questionOf(msg);
    queries.push({ name: q.name, type: q.type });
    if (q.name === HUNG || q.name === HUNG_TOO) return;  // a DNS server that never answers
    sock.send(answerFor(msg, q), from.port, from.address);
  });
  await new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(53, address, resolve);  // resolv.conf has no port: 53 it is
  });
  return { sock, address };
}

// --- whether this machine lets us do it ------------------------------------------------------------------
let skip = false;
let dns;
const resolvDir = makeTempDir('wsgw-dns-');
const resolvConf = path.join(resolvDir, 'resolv.conf');
try {
  dns = await startDns();
  fs.writeFileSync(resolvConf, `nameserver ${dns.address}\n`);
  const seen = execFileSync('unshare', ['-rm', '--', 'sh', '-c', `mount --bind '${resolvConf}' /etc/resolv.conf && cat /etc/resolv.conf`], { encoding: 'utf8' });
  if (!seen.includes(dns.address)) throw new Error('the bind mount did not take');
} catch (err) {
  skip = `needs unshare -rm with a bind mount over /etc/resolv.conf and UDP port 53 on 127.x: ${err.message}`;
  dns?.sock.close();
}

let gw;
let backend;
const seen = [];  // {url, headers} of every backend connection

before(async () => {
  if (skip) return;
  backend = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => backend.on('listening', resolve));
  backend.on('connection', (ws, req) => {
    seen.push({ url: req.url, headers: req.headers });
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  gw = await Gateway.start({
    routes: probeRoutes(),
    plugins: ['probe'],
    // The gateway alone sees the fake resolv.conf; one network thread, so the probe client shares it.
    wrapper: ['unshare', '-rm', '--', 'sh', '-c', `mount --bind '${resolvConf}' /etc/resolv.conf && exec "$0" "$@"`],
    extraArgs: ['--network-threads', '1'],
  });
});

after(async () => {
  if (skip) return;
  try {
    await gw?.stop();
  } finally {
    for (const ws of backend.clients) ws.terminate();
    await new Promise((resolve) => backend.close(resolve));
    dns.sock.close();
  }
});

// The probe's $connect handler relays a connection to the backend its query names.
const via = (host, suffix = '/') => `${gw.url}/?backend=${encodeURIComponent(`ws://${host}:${backend.address().port}${suffix}`)}`;

test('a backend named by a host name is looked up and relayed; it sees that name as the Host', { skip }, async () => {
  const c = await Client.open(via(ANSWERED, '/by-name'));
  assert.equal(await c.request('through a looked-up backend'), 'through a looked-up backend');
  assert.equal(seen.at(-1).url, '/by-name');
  assert.equal(seen.at(-1).headers.host.split(':')[0], ANSWERED, 'the Host header is the configured name, not the address');
  assert.ok(queries.some((q) => q.name === ANSWERED), 'the name went to the fake DNS server');
  await c.close();
});

// libwebsockets tried a name's addresses in turn; so does the gateway, within the same connect deadline.
test('a name with several addresses: the next is tried when one refuses; 502 naming how many when none answers', { skip }, async () => {
  const before = seen.length;
  const c = await Client.open(via(SECOND_WORKS, '/second'));
  assert.equal(await c.request('via the second address'), 'via the second address');
  assert.equal(seen.length, before + 1);
  assert.equal(seen.at(-1).url, '/second');
  assert.equal(seen.at(-1).headers.host.split(':')[0], SECOND_WORKS);
  await c.close();
  const refused = await openExpectingRefusal(via(NONE_WORKS), {}, 10000);
  assert.equal(refused.status, 502);
  assert.match(JSON.parse(refused.body).message, /^the backend is unreachable: .*\(tried 2 addresses\)$/);
});

test('a backend that refuses the upgrade itself is not asked again at the name\'s next address', { skip }, async () => {
  const upgrades = [];
  const refuser = http.createServer((req, res) => { res.writeHead(404); res.end(); });
  refuser.on('upgrade', (req, sock) => {
    upgrades.push(req.headers.host);
    sock.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise((resolve) => refuser.listen(0, '0.0.0.0', resolve));  // reached at 127.0.0.4 and 127.0.0.1 alike
  try {
    const url = `${gw.url}/?backend=${encodeURIComponent(`ws://${REFUSING}:${refuser.address().port}/`)}`;
    const refused = await openExpectingRefusal(url, {}, 10000);
    assert.equal(refused.status, 502);
    assert.doesNotMatch(JSON.parse(refused.body).message, /tried 2 addresses/);
    assert.equal(upgrades.length, 1, 'one upgrade request, at the first address');
  } finally {
    await new Promise((resolve) => refuser.close(resolve));
  }
});

test('while a backend lookup hangs, other clients of the network thread are answered at once; the waiting one gets 502 naming DNS', { skip }, async () => {
  const asked = queries.length;
  const started = Date.now();
  const waiting = openExpectingRefusal(via(HUNG), {}, 20000);
  await waitFor(() => queries.slice(asked).some((q) => q.name === HUNG), { what: 'the gateway to ask the fake DNS server' });
  // The network thread is the only one: before, it sat in getaddrinfo for the resolver's whole timeout (two
  // tries of 5 s) and this client waited as long.
  const probeStart = process.hrtime.bigint();
  const probe = await Client.open(gw.url, {}, 15000);  // time enough to measure how long it waited before
  assert.equal(await probe.request('still answered'), 'still answered');
  const probeMs = Number(process.hrtime.bigint() - probeStart) / 1e6;
  console.log(`probe connect + echo during the hung lookup: ${probeMs.toFixed(1)} ms`);
  assert.ok(probeMs < 500, `the probe took ${probeMs} ms while a backend lookup hung`);
  await probe.close();

  const refused = await waiting;
  const waitedMs = Date.now() - started;
  assert.equal(refused.status, 502);
  const message = JSON.parse(refused.body).message;
  assert.match(message, /^the backend is unreachable: DNS lookup of 'hung\.wsgw-dns\.test' did not finish within 5 s$/);
  assert.ok(waitedMs >= DNS_DEADLINE_MS - 200 && waitedMs < DNS_DEADLINE_MS + 3000, `refused after ${waitedMs} ms`);
  const line = await gw.waitForLog((l) => l.msg === 'proxy backend refused the connection' && /hung\.wsgw-dns\.test/.test(l.reason));
  assert.equal(line.status, 502);
  assert.equal(line.level, 'warn');
  // As for any backend that cannot be reached: no row is left, no $disconnect is owed.
  await waitFor(async () => (await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections')).length === 0,
    { what: 'the refused connection\'s row to go' });
  const connects = gw.events().filter((e) => e.requestContext?.eventType === 'CONNECT');
  const refusedId = connects.find((e) => e.queryStringParameters?.backend?.includes(HUNG))?.requestContext.connectionId;
  assert.ok(refusedId, 'its $connect ran');
  assert.equal(eventsOf(gw.eventsPath, refusedId, 'DISCONNECT').length, 0);
});

test('a name the DNS server does not know gets 502 with the resolver\'s reason, at once', { skip }, async () => {
  const started = Date.now();
  const refused = await openExpectingRefusal(via(MISSING));
  assert.equal(refused.status, 502);
  assert.match(JSON.parse(refused.body).message, /^the backend is unreachable: DNS lookup of 'missing\.wsgw-dns\.test' failed: .+/);
  assert.ok(Date.now() - started < 3000, 'an NXDOMAIN answer fails the connection without waiting for the deadline');
});

test('the global proxy URL is looked up too; many clients waiting on one hung name make one lookup', { skip }, async () => {
  const g = await Gateway.start({
    routes: { routeSelectionExpression: 'x', proxy: { url: `ws://${HUNG_TOO}:${backend.address().port}/` } },
    wrapper: ['unshare', '-rm', '--', 'sh', '-c', `mount --bind '${resolvConf}' /etc/resolv.conf && exec "$0" "$@"`],
    extraArgs: ['--network-threads', '1'],
  });
  try {
    const asked = queries.length;
    const waiting = Array.from({ length: 20 }, () => openExpectingRefusal(g.url, {}, 20000).catch((err) => err));
    const health = await withTimeout(fetch(`${g.managementUrl}/healthz`), 2000, 'healthz');
    assert.equal(health.status, 200);
    for (const refused of await Promise.all(waiting)) {
      assert.ok(!(refused instanceof Error), String(refused));
      assert.equal(refused.status, 502);
      assert.match(JSON.parse(refused.body).message, /DNS lookup of 'hung-too\.wsgw-dns\.test' did not finish/);
    }
    // One lookup (an A and an AAAA question, each asked again on glibc's retry), not twenty.
    const hungQuestions = queries.slice(asked).filter((q) => q.name === HUNG_TOO).length;
    assert.ok(hungQuestions <= 4, `${hungQuestions} questions for the hung name`);
  } finally {
    await g.stop();
  }
});
