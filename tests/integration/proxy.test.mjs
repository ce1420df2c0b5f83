// The WebSocket proxy (routes.json "proxy") in front of a real WebSocket server that is not wsgw (Node's
// `ws`), as the Apigee and Azure seed pages put a gateway in front of an echo server: $connect's apiKey
// authorizer and probe handler run first, then frames are relayed both ways with the path, query, chosen
// headers and subprotocol passed on; close codes cross in both directions; @connections still reaches the
// client; a backend that is down gets 502; a slow backend applies backpressure instead of growing memory;
// a 10 MB stream and 500 concurrent connections go through; and `wscat` works as the seed pages use it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { Client, Gateway, WebSocket, eventsOf, makeTempDir, openExpectingRefusal, probeRoutes, sqliteRows, waitFor, withTimeout } from './harness.mjs';

const KEY = 'proxy-demo-key';
let gw;
let backend;
const seen = [];          // {url, headers, protocol} of every backend connection
const backendClose = [];  // close codes the backend saw
let paused = null;        // a backend socket paused on purpose (slow reader)

before(async () => {
  backend = new WebSocketServer({
    host: '127.0.0.1', port: 0, maxPayload: 64 << 20,
    handleProtocols: (offers) => (offers.has('chat.v2') ? 'chat.v2' : false),
  });
  await new Promise((resolve) => backend.on('listening', resolve));
  backend.on('connection', (ws, req) => {
    seen.push({ url: req.url, headers: req.headers, protocol: ws.protocol });
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? null : data.toString();
      if (text?.startsWith('close:')) { ws.close(Number(text.slice(6)), 'backend closes'); return; }
      if (text === 'pause') { paused = ws; ws._socket.pause(); return; }
      if (text?.startsWith('tiny:')) {  // send N one-byte messages to the client, then "done tiny"
        for (let i = 0; i < Number(text.slice(5)); i++) ws.send('t');
        ws.send('done tiny');
        return;
      }
      if (text?.startsWith('stream:')) {  // send N messages of 100 KB to the client
        const chunk = Buffer.alloc(100 * 1024, 'z');
        for (let i = 0; i < Number(text.slice(7)); i++) ws.send(chunk);
        return;
      }
      ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code) => backendClose.push(code));
  });
  const url = `ws://127.0.0.1:${backend.address().port}/base/`;
  gw = await Gateway.start({
    routes: (dir) => ({
      routeSelectionExpression: '$request.body.action',
      proxy: { url, forwardHeaders: ['Authorization', 'X-Trace'], forwardQuery: true },
      handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
      routes: {
        $connect: { handler: 'probe', authorizer: { type: 'apiKey', keys: [KEY] } },
        $disconnect: { handler: 'probe' },
      },
    }),
    plugins: ['probe'],
    extraArgs: ['--access-log', 'off'],
  });
});

after(async () => {
  paused?._socket.resume();
  try {
    await gw?.stop();
  } finally {  // even when the gateway did not stop cleanly: an open backend would keep this process alive
    for (const ws of backend.clients) ws.terminate();
    await new Promise((resolve) => backend.close(resolve));
  }
});

const open = (suffix = '/', options = {}) => Client.open(`${gw.url}${suffix}${suffix.includes('?') ? '&' : '?'}apikey=${KEY}`, options);

test('frames are relayed both ways; path, query, chosen headers, X-Forwarded-For and the subprotocol reach the backend', async () => {
  const ws = new WebSocket(`${gw.url}/room/7?apikey=${KEY}&x=1`, ['chat.v2', 'json'], { headers: { Authorization: 'Bearer abc', 'X-Secret': 'no' } });
  const c = new Client(ws);
  await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'open');
  assert.equal(ws.protocol, 'chat.v2', 'the backend\'s choice comes back to the client');
  assert.equal(await c.request('hello through the gateway'), 'hello through the gateway');
  c.send(Buffer.from([0, 1, 2, 255]));
  const bin = await c.next();
  assert.ok(bin.isBinary && bin.data.equals(Buffer.from([0, 1, 2, 255])));
  const b = seen.at(-1);
  assert.equal(b.url, `/base/room/7?apikey=${KEY}&x=1`);
  assert.equal(b.headers.authorization, 'Bearer abc');
  assert.equal(b.headers['x-secret'], undefined, 'only the configured headers are forwarded');
  assert.equal(b.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(b.protocol, 'chat.v2');
  await c.close();
});

test('$connect\'s authorizer and handler run first; the connection is in the table and reachable with @connections', async () => {
  assert.equal((await openExpectingRefusal(gw.url)).status, 401, 'no key: the backend is never contacted');
  const backends = seen.length;
  const c = await open();
  await waitFor(() => seen.length === backends + 1, { what: 'the backend connection' });
  // Its row was committed before $connect ran, and written again with the authorizer's context once the
  // upgrade completed (a later batch of the table's writer, which the client does not wait for). The refused
  // upgrade's row (written before the authorizer ran, as $disconnect is configured) and the earlier test's
  // (deleted after its $disconnect) go in later batches too: wait until this connection's is the only one.
  const rows = await waitFor(async () => {
    const r = await sqliteRows(gw.dbPath, 'SELECT connection_id, authorizer FROM connections');
    return r.length === 1 && r[0].authorizer && r;
  }, { what: 'only the new connection\'s row, with its authorizer, in the table' });
  const id = rows[0].connection_id;
  assert.equal(JSON.parse(rows[0].authorizer).principalId.startsWith('key-'), true);
  assert.equal(eventsOf(gw.eventsPath, id, 'CONNECT').length, 1, 'the $connect handler ran');
  const posted = await fetch(`${gw.managementUrl}/@connections/${id}`, { method: 'POST', body: 'injected by the backend service' });
  assert.equal(posted.status, 200);
  assert.equal(await c.nextText(), 'injected by the backend service');
  assert.equal(await c.request('and the relay goes on'), 'and the relay goes on');
  await c.close(4321, 'client done');
  await waitFor(() => backendClose.includes(4321), { what: 'the backend to see the client\'s close code' });
  await waitFor(() => eventsOf(gw.eventsPath, id, 'DISCONNECT').length === 1, { what: 'the $disconnect' });
});

test('a close from the backend reaches the client with the same code, and its $disconnect runs', async () => {
  const c = await open();
  const rows = await waitFor(async () => {
    const r = await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections');
    return r.length === 1 && r;
  }, { what: 'its row' });
  c.send('close:4002');
  const closed = await c.waitClosed();
  assert.equal(closed.code, 4002);
  assert.equal(closed.reason, 'backend closes');
  const id = rows[0].connection_id;
  await waitFor(() => eventsOf(gw.eventsPath, id, 'DISCONNECT').length === 1, { what: 'its $disconnect' });
  assert.equal(eventsOf(gw.eventsPath, id, 'DISCONNECT')[0].requestContext.disconnectStatusCode, 4002);
});

test('a backend that is down gets 502 with a reason; nothing is left in the table', async () => {
  const g = await Gateway.start({
    routes: { routeSelectionExpression: 'x', proxy: { url: 'ws://127.0.0.1:1/' }, routes: { $default: { handler: 'echo' } } },
    plugins: ['echo'],
  });
  try {
    const refused = await openExpectingRefusal(g.url);
    assert.equal(refused.status, 502);
    assert.match(JSON.parse(refused.body).message, /the backend is unreachable/);
    assert.deepEqual(await sqliteRows(g.dbPath, 'SELECT connection_id FROM connections'), []);
    const metrics = await (await fetch(`${g.managementUrl}/metrics`)).text();
    assert.match(metrics, /wsgw_execution_error_total\{route="\$connect"\} 1\n/);
  } finally {
    await g.stop();
  }
});

// Two ways a backend took the whole gateway down: one that never answers the upgrade (the connection's
// close was handed to the public listener's callback, which took the backend link for a session: a
// segfault), and one that sends a message over 16 MiB (libwebsockets, told to close mid-frame, parsed the
// rest into a freed buffer). Now the first is a 504, the second a 1009 to the client, and the gateway lives.
test('a backend that never answers the upgrade gets 504, one that sends over 16 MiB gets 1009; the gateway lives on', async () => {
  const silent = net.createServer((sock) => sock.on('data', () => {}));  // accepts, reads, never answers
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const huge = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => huge.on('listening', resolve));
  huge.on('connection', (ws) => ws.send(Buffer.alloc(20 << 20, 0x41), { binary: true }));
  const start = (url) => Gateway.start({ routes: { routeSelectionExpression: 'x', proxy: { url }, routes: { $default: { handler: 'echo' } } }, plugins: ['echo'] });
  const g1 = await start(`ws://127.0.0.1:${silent.address().port}/`);
  const g2 = await start(`ws://127.0.0.1:${huge.address().port}/`);
  try {
    const refused = await openExpectingRefusal(g1.url, {}, 20000);
    assert.equal(refused.status, 504);
    assert.match(JSON.parse(refused.body).message, /did not answer the upgrade/);
    const c = await Client.open(g2.url);
    const closed = await withTimeout(c.closed, 20000, 'the client to be closed');
    assert.equal(closed.code, 1009, JSON.stringify(closed));
    await new Promise((r) => setTimeout(r, 500));  // where the crash came
    assert.ok(g1.alive() && g2.alive(), 'both gateways are still running');
    const m = await fetch(`${g2.managementUrl}/healthz`);
    assert.equal(m.status, 200);
  } finally {
    await g1.stop();
    await g2.stop();
    silent.close();
    huge.close();
  }
});

// A backend's redirect is not followed: it would carry the forwarded headers (Authorization) to whatever
// host the backend names. The client gets 502 and the redirect's target hears nothing.
test('a backend that answers the upgrade with a redirect gets 502; the redirect is not followed', async () => {
  let followed = 0;
  const target = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => target.on('listening', resolve));
  target.on('connection', () => { followed += 1; });
  const redirecting = net.createServer((sock) => sock.once('data', () => sock.end(
    `HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:${target.address().port}/elsewhere\r\nContent-Length: 0\r\n\r\n`)));
  await new Promise((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
  const g = await Gateway.start({ routes: { routeSelectionExpression: 'x', proxy: { url: `ws://127.0.0.1:${redirecting.address().port}/`, forwardHeaders: ['Authorization'] },
    routes: { $default: { handler: 'echo' } } }, plugins: ['echo'] });
  try {
    const refused = await openExpectingRefusal(g.url, { headers: { Authorization: 'Bearer SECRET' } });
    assert.equal(refused.status, 502);
    assert.match(JSON.parse(refused.body).message, /not 101/);
    assert.equal(followed, 0, 'the redirect was not followed');
  } finally {
    await g.stop();
    redirecting.close();
    target.close();
  }
});

test('a 10 MB stream crosses the proxy both ways intact', async () => {
  const c = await open();
  const part = crypto.randomBytes(30 * 1024); // under the 32 KiB frame limit
  const sent = crypto.createHash('sha256');
  const got = crypto.createHash('sha256');
  let received = 0;
  const total = 350;
  let onEcho;
  const done = new Promise((resolve) => {
    onEcho = (data) => {
      got.update(data);
      if (++received === total) resolve();
    };
    c.ws.on('message', onEcho);
  });
  for (let i = 0; i < total; i++) {
    const msg = Buffer.concat([Buffer.from(String(i).padStart(6, '0')), part.subarray(6)]);
    sent.update(msg);
    c.ws.send(msg);
  }
  await withTimeout(done, 30000, '350 echoes of 30 KB');
  c.ws.off('message', onEcho);
  assert.equal(got.digest('hex'), sent.digest('hex'), '10.5 MB echoed in order, byte for byte');
  // And 10 MB from the backend to the client.
  let bytes = 0;
  const streamed = new Promise((resolve) => {
    c.ws.on('message', (data) => {
      bytes += data.length;
      if (bytes >= 100 * 100 * 1024) resolve();
    });
  });
  c.send('stream:100');
  await withTimeout(streamed, 30000, '10 MB from the backend');
  await c.close();
});

test('a backend that stops reading: the gateway stops reading the client instead of buffering without bound', async () => {
  const c = await open();
  c.send('pause');
  await waitFor(() => paused, { what: 'the backend to pause' });
  const receivedBytes = async () => Number((await (await fetch(`${gw.managementUrl}/metrics`)).text()).match(/wsgw_received_bytes_total (\d+)/)[1]);
  const before = await receivedBytes();
  const chunk = Buffer.alloc(30 * 1024, 'p');
  const count = 1400; // 42 MB
  for (let i = 0; i < count; i++) c.ws.send(chunk);
  // Wait until the gateway has stopped reading: its received-bytes count unchanged over 3 polls 200 ms apart.
  // (A gateway that buffers without bound reads all 42 MB before it stalls, and fails below.)
  const samples = [];
  await waitFor(async () => {
    samples.push(await receivedBytes());
    return samples.length >= 3 && samples.at(-1) === samples.at(-3);
  }, { timeoutMs: 20000, intervalMs: 200, what: 'the gateway to stop reading the client' });
  // The gateway holds at most its high-water mark (1 MiB) beyond what the kernel's socket buffers take;
  // the rest has to wait in the client.
  const read = samples.at(-1) - before;
  assert.ok(read < 20 << 20, `the gateway read ${read} bytes of 42 MB while the backend was not reading`);
  assert.ok(c.ws.bufferedAmount > 20 << 20, `the client still holds ${c.ws.bufferedAmount} bytes: the gateway stopped reading it`);
  let echoed = 0;
  const all = new Promise((resolve) => c.ws.on('message', (data) => { echoed += data.length; if (echoed >= count * 30 * 1024) resolve(); }));
  paused._socket.resume();
  paused = null;
  await withTimeout(all, 30000, 'everything once the backend reads again');
  await c.close();
});

// The backend is paused when the client's send queue is half full, counted as maxSendQueueBytes counts it:
// payload and 64 bytes a frame. Counting payload bytes alone, a backend of one-byte messages filled the
// queue 65 times faster than it was paused, and a client that read a little late was closed as a slow
// consumer (1008). The client is tests/integration/slow-reader.py (4 KiB receive buffer, small MSS), so
// the gateway's queue, not the kernel, is what fills while it does not read.
test('a backend of tiny messages to a client that reads late: paused, not closed, nothing lost', async () => {
  const g = await Gateway.start({ routes: { routeSelectionExpression: 'x', proxy: { url: `ws://127.0.0.1:${backend.address().port}/` },
    limits: { maxSendQueueBytes: 65536 }, routes: { $default: { handler: 'echo' } } }, plugins: ['echo'] });
  try {
    const count = 50000;
    const script = new URL('./slow-reader.py', import.meta.url).pathname;
    const { stdout } = await promisify(execFile)('python3', [script, String(g.port), '0', '2', `tiny:${count}`, 'then-read'], { timeout: 60000 });
    assert.match(stdout, /^HTTP\/1\.1 101 /, stdout);
    assert.equal(stdout.trim().split('\n').at(-1), `read ${count} messages, then "done tiny"`, stdout);
    const metrics = await (await fetch(`${g.managementUrl}/metrics`)).text();
    assert.match(metrics, /wsgw_slow_consumer_closes_total 0\n/);
    assert.ok(g.alive());
  } finally {
    await g.stop();
  }
});

// limits.maxMessageBytes bounds what the backend sends the client as it bounds what the client sends
// (the per-connection memory formula of docs/limits.md): over it, the client hears 1009 with the limit named.
test('a backend message over limits.maxMessageBytes closes the client with 1009; one at the limit passes', async () => {
  const sizes = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => sizes.on('listening', resolve));
  sizes.on('connection', (ws) => ws.on('message', (data) => ws.send(Buffer.alloc(Number(data.toString()), 0x42))));
  const g = await Gateway.start({ routes: { routeSelectionExpression: 'x', proxy: { url: `ws://127.0.0.1:${sizes.address().port}/` },
    limits: { maxMessageBytes: 4096 }, routes: { $default: { handler: 'echo' } } }, plugins: ['echo'] });
  try {
    const c = await Client.open(g.url);
    c.send('4096');
    assert.equal((await c.next()).data.length, 4096);
    c.send('4097');
    const closed = await withTimeout(c.closed, 10000, 'the close');
    assert.equal(closed.code, 1009, JSON.stringify(closed));
    assert.match(closed.reason, /4096 bytes \(limits\.maxMessageBytes\)/);
    assert.ok(g.alive());
  } finally {
    await g.stop();
    sizes.close();
  }
});

test('500 concurrent proxied connections each echo', async () => {
  const clients = [];
  for (let i = 0; i < 500; i += 50) clients.push(...await Promise.all(Array.from({ length: 50 }, () => open())));
  const replies = await Promise.all(clients.map((c, i) => c.request(`n${i}`, 10000)));
  replies.forEach((r, i) => assert.equal(r, `n${i}`));
  await Promise.all(clients.map((c) => c.close()));
  await waitFor(async () => (await sqliteRows(gw.dbPath, 'SELECT count(*) AS n FROM connections'))[0].n === 0,
    { timeoutMs: 10000, what: 'every row gone' });
});

test('a routes.json with only "proxy" (no expression, no routes) serves: frames cross, closes cross', async () => {
  const g = await Gateway.start({ routes: { proxy: { url: `ws://127.0.0.1:${backend.address().port}/only/` } } });
  try {
    const c = await Client.open(`${g.url}/room?x=1`);
    assert.equal(await c.request('{"action":"anything"}'), '{"action":"anything"}');
    assert.equal(seen.at(-1).url, '/only/room?x=1');
    c.send('close:4003');
    assert.equal((await c.waitClosed()).code, 4003);
  } finally {
    await g.stop();
  }
});

test('a $connect handler may choose the backend per connection (Azure SignalR\'s negotiate pattern)', async () => {
  const g = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'], extraArgs: ['--access-log', 'off'] });
  try {
    const target = encodeURIComponent(`ws://127.0.0.1:${backend.address().port}/chosen/by/handler`);
    const relayed = await Client.open(`${g.url}/?backend=${target}`);
    assert.equal(await relayed.request('via the chosen backend'), 'via the chosen backend');
    const b = seen.at(-1);
    assert.equal(b.url, '/chosen/by/handler');
    assert.equal(b.headers['x-negotiated'], 'by-probe');
    const plain = await Client.open(g.url);  // no choice: the probe's own echo answers
    assert.equal(await plain.request('{"action":"whoami"}').then((r) => /^[A-Za-z0-9_-]{22}$/.test(r)), true);
    const bad = await openExpectingRefusal(`${g.url}/?backend=${encodeURIComponent('http://not-ws/')}`);
    assert.equal(bad.status, 502);
    assert.match(JSON.parse(bad.body).message, /chose an invalid backend/);
    await relayed.close();
    await plain.close();
  } finally {
    await g.stop();
  }
});

test('a wss:// backend: verified against --backend-ca; without it the unknown certificate is refused with 502', async () => {
  const dir = makeTempDir('wsgw-wss-backend-');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) });
  const secure = new WebSocketServer({ server });
  secure.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(`tls:${d}`, { binary: isBinary })));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const routes = { routeSelectionExpression: 'x', proxy: { url: `wss://localhost:${server.address().port}/` }, routes: { $default: { handler: 'echo' } } };
  const trusted = await Gateway.start({ routes, plugins: ['echo'], extraArgs: ['--backend-ca', cert, '--access-log', 'off'] });
  const untrusted = await Gateway.start({ routes, plugins: ['echo'], extraArgs: ['--access-log', 'off'] });
  try {
    const c = await Client.open(trusted.url);
    assert.equal(await c.request('over wss'), 'tls:over wss');
    await c.close();
    const refused = await openExpectingRefusal(untrusted.url);
    assert.equal(refused.status, 502);
    assert.match(JSON.parse(refused.body).message, /the backend is unreachable/);
  } finally {
    await trusted.stop();
    await untrusted.stop();
    for (const ws of secure.clients) ws.terminate();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('wscat, as the seed pages use it: wscat -c "ws://localhost:PORT/?apikey=KEY"', async () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const wscat = path.join(here, 'node_modules', '.bin', 'wscat');
  const { stdout } = await promisify(execFile)(wscat, ['-c', `ws://localhost:${gw.port}/?apikey=${KEY}`, '-x', 'hello from wscat', '-w', '1'],
    { timeout: 15000 });
  assert.match(stdout, /hello from wscat/);
});
