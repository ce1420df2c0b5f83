// TLS: wss:// on the public listener and https:// on the management listener, with a certificate this test
// generates (openssl req). The same rules hold as over plain TCP: $connect refusals keep their status, a
// message over the limit still closes with 1009, a large message crosses intact, and the management API
// pushes to a wss:// connection. A plain-text client on the TLS port and a bad certificate file fail cleanly.
// TLS is carried on the connection's own descriptor (no relay): one descriptor per wss:// connection, and
// plaintext left inside OpenSSL by a read is delivered when reading resumes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import {
  Client, Gateway, makeTempDir, metricValue, openExpectingRefusal, openSilentSockets, probeRoutes, runExpectingExit, waitFor, whoami, withTimeout,
} from './harness.mjs';

let gw;
let cert;
let dir;

function httpsRequest(url, { method = 'GET', body } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca: cert, servername: 'localhost' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(body);
  }), 5000, `${method} ${url}`);
}

before(async () => {
  dir = makeTempDir('wsgw-tls-');
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  cert = fs.readFileSync(certFile);
  gw = await Gateway.start({
    dir,
    routes: (d) => ({ ...probeRoutes({ routes: ['whoami', 'sleep'] })(d), limits: { maxPendingMessages: 16 } }),
    plugins: ['probe'],
    extraArgs: ['--tls-cert', certFile, '--tls-key', keyFile, '--management-tls-cert', certFile, '--management-tls-key', keyFile],
  });
});

after(async () => {
  await gw?.stop();
});

const wss = () => `wss://127.0.0.1:${gw.port}`;
const openDescriptors = () => fs.readdirSync(`/proc/${gw.proc.pid}/fd`).length;

async function metric(name) {
  const { text } = await httpsRequest(`${gw.managementUrl.replace('http://', 'https://')}/metrics`);
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

test('wss:// with the generated certificate: echo, a 120 KB message in 30 KB frames intact, and 1009 over the limit', async () => {
  const c = await Client.open(wss(), { ca: cert });
  assert.equal(await c.request('over tls'), 'over tls');
  const body = Array.from({ length: 120 * 1024 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
  for (let i = 0; i < 4; i++) c.ws.send(body.slice(i * 30720, (i + 1) * 30720), { fin: i === 3 });
  assert.equal(await c.nextText(), body, 'many TLS records, one message, every byte in order');
  const big = await Client.open(`${wss()}/`, { ca: cert });
  big.send('x'.repeat(200 * 1024));
  assert.equal((await big.waitClosed()).code, 1009);
  await c.close();
});

test('a client that does not trust the certificate cannot connect; a plain-text client on the TLS port is dropped', async () => {
  await assert.rejects(Client.open(wss(), {}, 3000), /self[- ]signed|certificate/i);
  const sock = net.connect({ host: '127.0.0.1', port: gw.port });
  sock.on('error', () => {}); // a reset is one way of being dropped
  await new Promise((resolve) => sock.once('connect', resolve));
  sock.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  await withTimeout(new Promise((resolve) => sock.once('close', resolve)), 5000, 'the gateway to drop the plain-text client');
  const c = await Client.open(wss(), { ca: cert });
  assert.equal(await c.request('still fine'), 'still fine');
  await c.close();
});

test('$connect refusals keep their status over TLS, and the event sees the real client address', async () => {
  const refused = await openExpectingRefusal(`${wss()}/?status=403`, { ca: cert });
  assert.equal(refused.status, 403);
  const c = await Client.open(wss(), { ca: cert });
  const id = await whoami(c);
  const connect = gw.events().find((e) => e.requestContext.connectionId === id && e.requestContext.eventType === 'CONNECT');
  assert.equal(connect.requestContext.identity.sourceIp, '127.0.0.1');
  await c.close();
});

test('the management API over https:// pushes to a wss:// connection and reads it', async () => {
  const c = await Client.open(wss(), { ca: cert });
  const id = await whoami(c);
  assert.ok(gw.managementUrl);
  const base = gw.managementUrl.replace('http://', 'https://');
  const posted = await httpsRequest(`${base}/@connections/${id}`, { method: 'POST', body: 'pushed over https' });
  assert.equal(posted.status, 200);
  assert.equal(await c.nextText(), 'pushed over https');
  const got = await httpsRequest(`${base}/@connections/${id}`);
  assert.equal(JSON.parse(got.text).identity.sourceIp, '127.0.0.1');
  const health = await httpsRequest(`${base}/healthz`);
  assert.equal(health.status, 200);
  await c.close();
});

test('a wss:// connection holds one descriptor, as a ws:// one does, and gives it back when it closes', async () => {
  // Connections of earlier tests may still be closing on the gateway's side: count from none.
  await waitFor(async () => (await metric('wsgw_connections')) === 0, { timeoutMs: 10000, what: 'no connection left open' });
  const before = openDescriptors();
  const clients = [];
  for (let i = 0; i < 40; i++) clients.push(await Client.open(wss(), { ca: cert }));
  for (const c of clients) assert.equal(await c.request('hello'), 'hello');
  const held = openDescriptors() - before;
  // A TLS relay over a socketpair held three per connection (120 here).
  assert.ok(held >= 40 && held <= 44, `40 wss:// connections hold ${held} descriptors`);
  await Promise.all(clients.map((c) => c.close()));
  await waitFor(() => openDescriptors() <= before, { timeoutMs: 10000, what: `the descriptors back to ${before} (now ${openDescriptors()})` });
});

test('pipelining to a slow route over wss:// pauses reading with plaintext left inside TLS; it resumes and every answer arrives in order', async () => {
  const c = await Client.open(wss(), { ca: cert });
  const paused0 = await metric('wsgw_reads_paused_total');
  // 400 messages of 3 KB, each its own TLS record from this client: a 64 KiB read ends inside a record, so
  // OpenSSL keeps the rest, which no readiness event announces once the socket itself is drained.
  const n = 400;
  for (let i = 0; i < n; i++) c.ws.send(JSON.stringify({ action: 'sleep', ms: 1, seq: i, pad: 'x'.repeat(3000) }));
  for (let i = 0; i < n; i++) assert.equal(await c.nextText(10000), 'slept', `answer ${i}`);
  assert.ok((await metric('wsgw_reads_paused_total')) > paused0, 'reading paused at the pending bound');
  const big = 'y'.repeat(100 * 1024);
  c.ws.send(big);
  assert.equal(await c.nextText(10000), big, 'a message over many records after that');
  await c.close();
  // An upgrade request of 6 KB comes in one TLS record; the head is read 4 KB at a time, so its last 2 KB
  // wait inside OpenSSL with nothing left on the socket: without the loop's feed they would never be read.
  const padded = await Client.open(wss(), { ca: cert, headers: { 'x-pad': 'p'.repeat(6000) } }, 5000);
  assert.equal(await padded.request('after a 6 KB head'), 'after a 6 KB head');
  await padded.close();
});

// A self-signed certificate for localhost written to certFile/keyFile, valid `days` from now; days < 0: one
// that expired in 2020 (openssl ca, the one subcommand of OpenSSL 3.0 that takes explicit dates).
function writeCertificate(certFile, keyFile, days = 1) {
  const subject = ['-subj', '/CN=localhost'];
  if (days > 0) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile,
      '-out', certFile, ...subject, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', String(days)], { stdio: 'ignore' });
    return fs.readFileSync(certFile);
  }
  const ca = makeTempDir('wsgw-tls-ca-');
  fs.writeFileSync(path.join(ca, 'ca.cnf'), `[ca]\ndefault_ca = d\n[d]\ndatabase = ${ca}/index.txt\nnew_certs_dir = ${ca}\n` +
    `serial = ${ca}/serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n`);
  fs.writeFileSync(path.join(ca, 'index.txt'), '');
  fs.writeFileSync(path.join(ca, 'serial'), '01\n');
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile,
    '-out', path.join(ca, 'req.csr'), ...subject], { stdio: 'ignore' });
  execFileSync('openssl', ['ca', '-batch', '-notext', '-selfsign', '-config', path.join(ca, 'ca.cnf'), '-keyfile', keyFile,
    '-in', path.join(ca, 'req.csr'), '-out', certFile, '-startdate', '20200101000000Z', '-enddate', '20200102000000Z'], { stdio: 'ignore' });
  fs.rmSync(ca, { recursive: true, force: true });
  return fs.readFileSync(certFile);
}

const fingerprintOf = (c) => c.ws._socket.getPeerCertificate().fingerprint256;

test('SIGHUP renews the certificate: new handshakes get the new one, open connections stay, a bad renewal keeps the running one', async () => {
  const own = makeTempDir('wsgw-tls-renew-');
  const certFile = path.join(own, 'cert.pem');
  const keyFile = path.join(own, 'key.pem');
  const first = writeCertificate(certFile, keyFile, 3);
  const g = await Gateway.start({
    dir: own, routes: probeRoutes({ routes: ['whoami'] }), plugins: ['probe'],
    extraArgs: ['--tls-cert', certFile, '--tls-key', keyFile, '--management-tls-cert', certFile, '--management-tls-key', keyFile],
  });
  try {
    assert.ok(g.lines.some((l) => l.level === 'warn' && /expires soon/.test(l.msg ?? '')), 'a certificate valid 3 days is warned about');
    const url = `wss://127.0.0.1:${g.port}`;
    const old = await Client.open(url, { ca: first });
    const firstPrint = fingerprintOf(old);
    const second = writeCertificate(certFile, keyFile, 30);
    g.proc.kill('SIGHUP');
    await g.waitForLog((l) => /TLS certificate reloaded: new handshakes/.test(l.msg ?? ''), 10000, 'the certificate reload');
    const renewed = await Client.open(url, { ca: second });
    assert.notEqual(fingerprintOf(renewed), firstPrint, 'a new handshake gets the new certificate');
    assert.equal(await renewed.request('renewed'), 'renewed');
    assert.equal(await old.request('still open'), 'still open', 'the connection made before the renewal stays');
    const mgmt = await withTimeout(new Promise((resolve, reject) => {
      https.get(`${g.managementUrl.replace('http://', 'https://')}/healthz`, { ca: second, servername: 'localhost' }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    }), 5000, 'https /healthz');
    assert.equal(mgmt, 200, 'the management listener uses the renewed certificate too');
    // A renewal that cannot be used: a key that is not PEM. The running certificate stays.
    fs.writeFileSync(keyFile, 'not a key\n');
    g.proc.kill('SIGHUP');
    const failed = await g.waitForLog((l) => l.level === 'error' && /TLS certificate not reloaded/.test(l.msg ?? ''), 10000, 'the refused reload');
    assert.match(failed.error, /key\.pem as a PEM private key/);
    const after = await Client.open(url, { ca: second });
    assert.equal(await after.request('kept'), 'kept');
    // A key replaced by a FIFO: refused at once (OpenSSL's file loader waited for a writer for ever, and every
    // later SIGHUP, and SIGTERM, with it).
    fs.unlinkSync(keyFile);
    execFileSync('mkfifo', [keyFile]);
    g.proc.kill('SIGHUP');
    const fifo = await g.waitForLog((l) => l.level === 'error' && /TLS certificate not reloaded/.test(l.msg ?? '') && /FIFO/.test(l.error ?? ''), 10000, 'the refused FIFO');
    assert.match(fifo.error, /key\.pem: is a FIFO, not a regular file/);
    fs.unlinkSync(keyFile);
    assert.equal(await after.request('kept again'), 'kept again');
    // An expired certificate is loaded (the operator's choice) but warned about.
    writeCertificate(certFile, keyFile, -1);
    g.proc.kill('SIGHUP');
    await g.waitForLog((l) => l.level === 'warn' && /has expired/.test(l.msg ?? ''), 10000, 'the expired-certificate warning');
    for (const c of [old, renewed, after]) await c.close();
    assert.ok(g.alive());
  } finally {
    await g.stop();
  }
});

// CPU ticks per thread of the gateway, by the thread's name.
function threadTicks() {
  const out = [];
  for (const tid of fs.readdirSync(`/proc/${gw.proc.pid}/task`)) {
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${gw.proc.pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue;  // the thread ended meanwhile
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.push({ tid, name, ticks: Number(fields[11]) + Number(fields[12]) });
  }
  return out;
}

function handshakeAndHangUp() {
  return withTimeout(new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: gw.port, ca: cert, servername: 'localhost' }, () => {
      socket.destroy();
      resolve();
    });
    socket.on('error', reject);
  }), 10000, 'a TLS handshake');
}

test('TLS handshakes run on their own thread: a burst of them costs the network threads, which move every open connection\'s bytes, almost nothing', async () => {
  const c = await Client.open(wss(), { ca: cert });
  const before = threadTicks();
  for (let round = 0; round < 100; round++) await Promise.all([0, 1, 2, 3].map(() => handshakeAndHangUp()));
  const after = threadTicks();
  const delta = (pred) => after.filter(pred).reduce((sum, t) => sum + t.ticks - (before.find((b) => b.tid === t.tid)?.ticks ?? 0), 0);
  const handshakeTicks = delta((t) => t.name === 'wsgw-tls');
  const otherTicks = delta((t) => t.name !== 'wsgw-tls');
  // 400 full handshakes with an RSA-2048 key: about 1.5 ms of server CPU each, 60 ticks of 10 ms.
  assert.ok(handshakeTicks >= 20, `the handshake threads did the handshakes: ${handshakeTicks} ticks (threads: ${JSON.stringify(after)})`);
  assert.ok(otherTicks * 2 < handshakeTicks, `every other thread together: ${otherTicks} ticks, against ${handshakeTicks} for the handshakes`);
  assert.ok(await whoami(c), 'the open connection still answers');
  await c.close();
});

// A gateway of its own, with a fresh certificate and these limits; `ca` is the certificate to trust.
async function ownTlsGateway(tag, limits) {
  const own = makeTempDir(`wsgw-tls-${tag}-`);
  const certFile = path.join(own, 'cert.pem');
  const keyFile = path.join(own, 'key.pem');
  writeCertificate(certFile, keyFile, 30);
  const g = await Gateway.start({
    dir: own, routes: (d) => ({ ...probeRoutes({ routes: ['whoami'] })(d), limits }), plugins: ['probe'],
    extraArgs: ['--tls-cert', certFile, '--tls-key', keyFile],
  });
  return { g, ca: fs.readFileSync(certFile) };
}

test('sockets in their TLS handshake count against maxConnectionsPerIp: beyond it a new one is closed at once; a failed handshake frees its place', async () => {
  const { g, ca } = await ownTlsGateway('peraddress', { maxConnectionsPerIp: 2 });
  let silent = [];
  try {
    // No ClientHello: two are held in their handshake (10 s), two are closed at accept.
    silent = await openSilentSockets(g.port, 4);
    await waitFor(() => silent.filter((s) => s.closedAfterMs !== null).length >= 2, { timeoutMs: 5000, what: 'two of the four closed' });
    const closedEarly = silent.filter((s) => s.closedAfterMs !== null);
    assert.equal(closedEarly.length, 2, `exactly two closed at once: ${JSON.stringify(silent.map((s) => s.closedAfterMs))}`);
    for (const s of closedEarly) assert.ok(s.closedAfterMs < 3000, `closed at accept, not by the handshake timeout: ${s.closedAfterMs} ms`);
    assert.equal(await metricValue(g, 'wsgw_pending_per_ip_refusals_total'), 2);
    // A client from another address completes its handshake and connects meanwhile.
    const other = await Client.open(`wss://127.0.0.1:${g.port}`, { ca, localAddress: '127.0.0.2' });
    assert.ok(await whoami(other));
    await other.close();
    // The silent ones hang up: their handshakes fail on the handshake thread, which gives their places back.
    for (const s of silent) s.sock.destroy();
    const again = await waitFor(() => Client.open(`wss://127.0.0.1:${g.port}`, { ca }).catch(() => null),
      { what: 'a wss connection from 127.0.0.1 once the silent sockets left' });
    await again.close();
  } finally {
    for (const s of silent) s.sock.destroy();
    await g.stop();
  }
});

test('handshakeTimeoutSeconds covers the TLS handshake: a client that never sends its ClientHello is dropped when it ends', async () => {
  const { g, ca } = await ownTlsGateway('timeout', { handshakeTimeoutSeconds: 1 });
  let silent = [];
  try {
    silent = await openSilentSockets(g.port, 1);
    await waitFor(() => silent[0].closedAfterMs !== null, { timeoutMs: 5000, what: 'the silent TLS socket to be dropped' });
    assert.ok(silent[0].closedAfterMs >= 800 && silent[0].closedAfterMs < 4000,
      `dropped at the 1 s handshakeTimeoutSeconds (the TLS handshake used to have 10 s of its own): ${silent[0].closedAfterMs} ms`);
    const c = await Client.open(`wss://127.0.0.1:${g.port}`, { ca });
    assert.ok(await whoami(c), 'a client that completes in time connects');
    await c.close();
  } finally {
    for (const s of silent) s.sock.destroy();
    await g.stop();
  }
});

test('a TLS key that does not match its certificate refuses the start, naming the files', async () => {
  const otherKey = path.join(dir, 'other-key.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', otherKey], { stdio: 'ignore' });
  const res = await runExpectingExit({ routes: probeRoutes(), plugins: ['probe'], extraArgs: ['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', otherKey] });
  assert.equal(res.code, 2);
  assert.match(res.stderr, /--tls-cert\/--tls-key: the key in .*other-key\.pem does not match the certificate/);
  const fifo = path.join(dir, 'fifo-cert.pem');
  execFileSync('mkfifo', [fifo]);
  const piped = await runExpectingExit({ routes: probeRoutes(), plugins: ['probe'], extraArgs: ['--tls-cert', fifo, '--tls-key', path.join(dir, 'key.pem')] });
  assert.equal(piped.code, 2, 'a FIFO as the certificate refuses the start (it hung)');
  assert.match(piped.stderr, /fifo-cert\.pem: is a FIFO, not a regular file/);
  const half = await runExpectingExit({ routes: probeRoutes(), plugins: ['probe'], extraArgs: ['--tls-cert', path.join(dir, 'cert.pem')] });
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--tls-cert and --tls-key go together/);
});
