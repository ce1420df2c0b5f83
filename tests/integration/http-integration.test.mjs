// A route's "http" integration against a real HTTP backend started here (Node's http server): the event
// JSON (docs/event.md) is POSTed with keep-alive; a two-way route sends the backend's raw body back;
// $connect's status is the upgrade's answer; a backend that is down, slow, or answering 500 is handled as
// AWS handles its HTTP integrations, and the gateway carries on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Client, Gateway, errorFrameRegex, openExpectingRefusal, sleep, waitFor } from './harness.mjs';

let gw;
let backend;
let backendPort;
let dripping;          // a raw backend that never finishes its answer: {server, closedAt: [{kind, ms}]}
const received = [];   // every request the backend got: {path, headers, event}
const sockets = new Set();

before(async () => {
  backend = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const event = JSON.parse(body);
      received.push({ path: req.url, headers: req.headers, event });
      const ctx = event.requestContext;
      if (req.url === '/connect') {
        const q = event.queryStringParameters ?? {};
        res.writeHead(q.deny ? 401 : 200, { 'Content-Type': 'application/json' });
        res.end(q.deny ? JSON.stringify({ message: 'the backend says no' }) : '');
        return;
      }
      if (req.url === '/disconnect') { res.writeHead(204); res.end(); return; }
      const msg = event.body ? JSON.parse(event.body) : {};
      if (msg.action === 'slow') { setTimeout(() => { res.writeHead(200); res.end('late'); }, 1500); return; }
      if (msg.action === 'boom') { res.writeHead(500); res.end('backend exploded'); return; }
      if (msg.action === 'chunked') { res.writeHead(200); res.write('part1-'); setTimeout(() => res.end('part2'), 20); return; }
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`backend saw ${ctx.routeKey} from ${ctx.connectionId}: ${event.body}`);
    });
  });
  backend.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve) => backend.listen(0, '127.0.0.1', resolve));
  backendPort = backend.address().port;
  const base = `http://127.0.0.1:${backendPort}`;
  // Answers every request with bytes that never end, as fast as the gateway takes them (for at most 10 s):
  // interim 102 answers, or a chunked body of 16 KiB chunks; notes when the gateway closes the connection.
  dripping = { closedAt: [] };
  dripping.server = net.createServer((sock) => {
    sock.once('data', (req) => {
      const kind = req.toString().includes('/interim') ? 'interim' : 'chunked';
      const started = Date.now();
      const piece = kind === 'interim' ? Buffer.from('HTTP/1.1 102 Processing\r\n\r\n'.repeat(500))
        : Buffer.concat([Buffer.from('4000\r\n'), Buffer.alloc(0x4000, 'x'), Buffer.from('\r\n')]);
      if (kind === 'chunked') sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      const pump = () => {
        while (!sock.destroyed && Date.now() - started < 10000) {
          if (!sock.write(piece)) { sock.once('drain', pump); return; }
        }
        sock.destroy();
      };
      pump();
      sock.on('close', () => dripping.closedAt.push({ kind, ms: Date.now() - started }));
      sock.on('error', () => {});
    });
  });
  await new Promise((resolve) => dripping.server.listen(0, '127.0.0.1', resolve));
  const drip = `http://127.0.0.1:${dripping.server.address().port}`;
  gw = await Gateway.start({
    routes: {
      routeSelectionExpression: '$request.body.action',
      routes: {
        $connect: { http: `${base}/connect` },
        $disconnect: { http: `${base}/disconnect` },
        $default: { http: `${base}/message`, routeResponse: true, timeoutMs: 500 },
        down: { http: 'http://127.0.0.1:1/nothing-listens-here', routeResponse: true },
        interim: { http: `${drip}/interim`, routeResponse: true, timeoutMs: 500 },
        trickle: { http: `${drip}/trickle`, routeResponse: true, timeoutMs: 500 },
      },
    },
  });
});

after(async () => {
  await gw?.stop();
  backend?.closeAllConnections?.();
  await new Promise((resolve) => backend?.close(resolve));
  await new Promise((resolve) => dripping?.server.close(resolve));
});

test('$connect, a two-way message and $disconnect are POSTed as AWS-shaped events; the body comes back', async () => {
  const c = await Client.open(`${gw.url}/?room=7`);
  const connect = received.find((r) => r.path === '/connect');
  assert.equal(connect.event.requestContext.eventType, 'CONNECT');
  assert.deepEqual(connect.event.queryStringParameters, { room: '7' });
  assert.equal(connect.headers['content-type'], 'application/json');
  assert.equal(connect.headers['x-wsgw-event-type'], 'CONNECT');
  const id = connect.event.requestContext.connectionId;
  assert.equal(connect.headers['x-wsgw-connection-id'], id);
  c.send('{"action":"greet","n":1}');
  assert.equal(await c.nextText(), `backend saw $default from ${id}: {"action":"greet","n":1}`);
  await c.close();
  await waitFor(() => received.some((r) => r.path === '/disconnect' && r.event.requestContext.connectionId === id),
    { what: 'the $disconnect POST' });
});

test('a non-2xx answer to $connect refuses the upgrade with that status and body', async () => {
  const refused = await openExpectingRefusal(`${gw.url}/?deny=1`);
  assert.equal(refused.status, 401);
  assert.deepEqual(JSON.parse(refused.body), { message: 'the backend says no' });
});

test('a chunked response is reassembled; a 500 answer is still the route response; connections are reused', async () => {
  const c = await Client.open(gw.url);
  await c.request('{"action":"warm"}');
  const before = sockets.size;
  assert.equal(await c.request('{"action":"chunked"}'), 'part1-part2');
  assert.equal(await c.request('{"action":"boom"}'), 'backend exploded');
  for (let i = 0; i < 20; i++) await c.request(`{"action":"n${i}"}`);
  assert.ok(sockets.size <= before + 1, `keep-alive: ${sockets.size} backend connections after 22 requests (had ${before})`);
  const metrics = await (await fetch(`${gw.managementUrl}/metrics`)).text();
  assert.match(metrics, /wsgw_integration_error_total\{route="\$default"\} 1\n/);
  await c.close();
});

test('a backend slower than timeoutMs gets AWS\'s timeout frame; one that is down an Internal server error', async () => {
  const c = await Client.open(gw.url);
  c.send('{"action":"slow"}');
  assert.match(await c.nextText(2000), errorFrameRegex('Endpoint request timed out'));
  assert.match(await c.request('{"action":"down"}'), errorFrameRegex('Internal server error'));
  await c.expectSilence(1200); // the slow backend answers meanwhile: dropped
  assert.equal((await c.request('{"action":"after"}')).startsWith('backend saw'), true);
  // The timed-out call is counted when its worker gives it up, which the client does not see: wait until
  // both counts are there (a wrong count never gets there), then show them.
  const counted = (text) => /wsgw_execution_error_total\{route="down"\} 1\n/.test(text) && /wsgw_execution_error_total\{route="\$default"\} 1\n/.test(text);
  const metrics = await waitFor(async () => {
    const text = await (await fetch(`${gw.managementUrl}/metrics`)).text();
    return counted(text) && text;
  }, { what: 'one execution error on "down" and one on $default' }).catch(async () => (await fetch(`${gw.managementUrl}/metrics`)).text());
  assert.match(metrics, /wsgw_execution_error_total\{route="down"\} 1\n/);
  assert.match(metrics, /wsgw_execution_error_total\{route="\$default"\} 1\n/);
  await c.close();
  await sleep(10);
});

// A backend that keeps sending without ever finishing: a flood of interim 1xx answers (each was kept in
// memory, the buffer re-parsed from its start at every read, and the deadline never checked while bytes
// kept coming: a worker and a core busy for as long as the backend went on), or an endless chunked body
// (re-parsed whole at every read: seconds of CPU before its 16 MiB bound). Now each byte is parsed once,
// interim answers are dropped and at most 32 taken, and the backend connection is closed at once.
test('a backend that never stops sending is cut off at once, not read for ever', async () => {
  const c = await Client.open(gw.url);
  for (const kind of ['interim', 'trickle']) {
    c.send(`{"action":"${kind}"}`);
    assert.match(await c.nextText(3000), /^\{"message": "(Internal server error|Endpoint request timed out)"/, kind);
  }
  await waitFor(() => dripping.closedAt.length === 2, { timeoutMs: 5000, what: 'the gateway to close both flooding backend connections' });
  for (const { kind, ms } of dripping.closedAt) assert.ok(ms < 2500, `${kind}: the backend connection was closed after ${ms} ms`);
  assert.equal((await c.request('{"action":"after"}')).startsWith('backend saw'), true);
  await c.close();
});
