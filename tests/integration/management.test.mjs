// The management API (docs/management-api.md) over real HTTP: POST/GET/DELETE /@connections/{id}, with and
// without a stage prefix, AWS's status codes, JSON error bodies and x-amzn-ErrorType, bearer tokens,
// the connection list, and bad requests that must not disturb the gateway or its connections.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Gateway, Client, defaultRoutes, probeRoutes, whoami, waitForEvent, ctx, makeTempDir, runExpectingExit, withTimeout, rssKb, sanitized, waitFor, waitForCpuQuiet } from './harness.mjs';

const TOKEN = 'test-token-0123456789abcdef';
let open;    // a gateway with no credentials (loopback development)
let locked;  // a gateway that requires a bearer token

before(async () => {
  open = await Gateway.start({ routes: probeRoutes({ routes: ['whoami'] }), plugins: ['probe'] });
  const dir = makeTempDir('wsgw-mgmt-');
  const creds = path.join(dir, 'credentials.json');
  fs.writeFileSync(creds, JSON.stringify({ tokens: [TOKEN] }));
  locked = await Gateway.start({ dir, routes: defaultRoutes(), plugins: ['echo', 'chat'], extraArgs: ['--management-credentials', creds] });
});

after(async () => {
  await open?.stop();
  await locked?.stop();
});

async function call(gw, method, p, { body, headers = {} } = {}) {
  const res = await fetch(gw.managementUrl + p, { method, body, headers });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, json: text ? (() => { try { return JSON.parse(text); } catch { return undefined; } })() : undefined };
}

test('POST delivers to the connection, in the order posted, as text or binary', async () => {
  const c = await Client.open(open.url);
  const id = await whoami(c);
  for (let i = 0; i < 20; i++) {
    const r = await call(open, 'POST', `/@connections/${id}`, { body: `push-${i}` });
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
  }
  assert.deepEqual(await c.collectTexts(20, 5000), Array.from({ length: 20 }, (_, i) => `push-${i}`));
  const bin = await call(open, 'POST', `/@connections/${id}`, { body: Buffer.from([0xff, 0x00, 0xfe]) });
  assert.equal(bin.status, 200);
  const msg = await c.next();
  assert.equal(msg.isBinary, true);
  assert.deepEqual([...msg.data], [0xff, 0x00, 0xfe]);
  await c.close(1000);
});

test('the stage prefix and URL-encoded paths of the AWS SDK work', async () => {
  const c = await Client.open(open.url);
  const id = await whoami(c);
  const r = await call(open, 'POST', `/prod/%40connections/${encodeURIComponent(id)}`, { body: 'via-stage' });
  assert.equal(r.status, 200);
  assert.equal(await c.nextText(), 'via-stage');
  await c.close(1000);
});

test('GET describes a live connection; DELETE closes it and its $disconnect runs', async () => {
  const c = await Client.open(open.url, { headers: { 'User-Agent': 'mgmt-test/1.0' } });
  const id = await whoami(c);
  const g = await call(open, 'GET', `/@connections/${id}`);
  assert.equal(g.status, 200);
  assert.equal(g.json.identity.sourceIp, '127.0.0.1');
  assert.equal(g.json.identity.userAgent, 'mgmt-test/1.0');
  assert.match(g.json.connectedAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  assert.match(g.json.lastActiveAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  const d = await call(open, 'DELETE', `/@connections/${id}`);
  assert.equal(d.status, 204);
  const closed = await c.waitClosed(3000);
  assert.equal(closed.code, 1000);
  await waitForEvent(open.eventsPath, (e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === id,
    { what: 'the $disconnect of the deleted connection' });
  for (const method of ['POST', 'GET', 'DELETE']) {
    const gone = await call(open, method, `/@connections/${id}`, { body: method === 'POST' ? 'x' : undefined });
    assert.equal(gone.status, 410, `${method} after delete`);
    assert.equal(gone.headers.get('x-amzn-errortype'), 'GoneException');
    assert.equal(typeof gone.json.message, 'string');
  }
});

test('errors: malformed ID 400, unknown ID 410, over the limit 413, unknown path 404, wrong method 405', async () => {
  const bad = await call(open, 'POST', '/@connections/not-an-id!', { body: 'x' });
  assert.equal(bad.status, 400);
  assert.equal(bad.headers.get('x-amzn-errortype'), 'BadRequestException');
  const unknown = await call(open, 'GET', '/@connections/AAAAAAAAAAAAAAAAAAAAAA');
  assert.equal(unknown.status, 410);
  const c = await Client.open(open.url);
  const id = await whoami(c);
  const big = await call(open, 'POST', `/@connections/${id}`, { body: 'x'.repeat(131073) });
  assert.equal(big.status, 413);
  assert.equal(big.headers.get('x-amzn-errortype'), 'PayloadTooLargeException');
  const nf = await call(open, 'GET', '/nothing/here/at/all');
  assert.equal(nf.status, 404);
  assert.match(nf.json.message, /@connections/);
  const put = await call(open, 'PUT', `/@connections/${id}`, { body: 'x' });
  assert.equal(put.status, 405);
  assert.match(put.headers.get('allow'), /POST/);
  assert.equal(await c.request('{"action":"whoami"}'), id, 'the connection is undisturbed');
  await c.close(1000);
});

test('other methods on /healthz, /readyz and /console get 405 with Allow: GET, without credentials, and HEAD gets no body', async () => {
  for (const gw of [open, locked]) {
    for (const p of ['/healthz', '/readyz', '/console']) {
      for (const method of ['POST', 'HEAD']) {
        const r = await call(gw, method, p, method === 'POST' ? { body: 'x' } : {});
        assert.equal(r.status, 405, `${method} ${p}: ${r.text}`);
        assert.equal(r.headers.get('allow'), 'GET', `${method} ${p}`);
        assert.equal(r.headers.get('x-amzn-errortype'), 'MethodNotAllowedException');
        if (method === 'POST') assert.equal(r.json.message, `${p} answers GET only`);
      }
    }
  }
  // A HEAD answer carries no body: the answer to the next request on the connection follows its head at once.
  const { port } = new URL(open.managementUrl);
  const got = await withTimeout(new Promise((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1', () =>
      s.write('HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    let text = '';
    s.on('data', (d) => { text += d.toString('latin1'); });
    s.on('close', () => resolve(text));
    s.on('error', reject);
  }), 5000, 'the two answers');
  const [head, ...rest] = got.split('\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 405 /);
  assert.match(head, /\r\nAllow: GET(\r\n|$)/);
  assert.match(rest.join('\r\n\r\n'), /^HTTP\/1\.1 200 [\s\S]*\{"status":"alive"\}$/, `what followed the HEAD answer: ${JSON.stringify(got)}`);
});

test('GET /@connections lists live connections with cursor pagination', async () => {
  const clients = await Promise.all(Array.from({ length: 5 }, () => Client.open(open.url)));
  const ids = await Promise.all(clients.map((c) => whoami(c)));
  const seen = [];
  let cursor = '';
  for (let page = 0; page < 10; page++) {
    const r = await call(open, 'GET', `/@connections?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    assert.equal(r.status, 200);
    assert.ok(r.json.items.length <= 2);
    for (const item of r.json.items) seen.push(item.connectionId);
    if (!r.json.nextCursor) break;
    cursor = r.json.nextCursor;
  }
  for (const id of ids) assert.ok(seen.includes(id), `${id} listed`);
  assert.deepEqual(seen, [...seen].sort(), 'ordered by connection ID');
  assert.equal(new Set(seen).size, seen.length, 'no connection listed twice');
  const badLimit = await call(open, 'GET', '/@connections?limit=0');
  assert.equal(badLimit.status, 400);
  await Promise.all(clients.map((c) => c.close(1000)));
});

test('with credentials: no token or a wrong token is 403 ForbiddenException; the right token works', async () => {
  const c = await Client.open(locked.url);
  c.send(JSON.stringify({ action: 'nothing' }));
  await c.nextText();
  const list = await call(locked, 'GET', '/@connections', { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(list.status, 200);
  assert.equal(list.json.items.length, 1);
  const id = list.json.items[0].connectionId;
  const none = await call(locked, 'POST', `/@connections/${id}`, { body: 'x' });
  assert.equal(none.status, 403);
  assert.equal(none.headers.get('x-amzn-errortype'), 'ForbiddenException');
  const wrong = await call(locked, 'POST', `/@connections/${id}`, { body: 'x', headers: { Authorization: 'Bearer wrong-token-0123456789' } });
  assert.equal(wrong.status, 403);
  const ok = await call(locked, 'POST', `/@connections/${id}`, { body: 'authorized', headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(ok.status, 200);
  assert.equal(await c.nextText(), 'authorized');
  await c.close(1000);
});

test('with credentials: a scheme without its token or parameters is told what is missing', async () => {
  const bearer = await call(locked, 'GET', '/@connections', { headers: { Authorization: 'Bearer' } });
  assert.equal(bearer.status, 403);
  assert.match(bearer.json.message, /^Authorization: Bearer has no token: send Authorization: Bearer <token>/);
  const sigv4 = await call(locked, 'GET', '/@connections', { headers: { Authorization: 'AWS4-HMAC-SHA256' } });
  assert.equal(sigv4.status, 403);
  assert.match(sigv4.json.message, /^Authorization AWS4-HMAC-SHA256 has no parameters: it needs Credential=, SignedHeaders= and Signature=/);
  const other = await call(locked, 'GET', '/@connections', { headers: { Authorization: 'Basic dXNlcjpwYXNz' } });
  assert.match(other.json.message, /unsupported Authorization scheme: use Bearer or AWS4-HMAC-SHA256/);
});

test('malformed, truncated and pipelined raw requests get clear answers and disturb nothing', async () => {
  const { port } = new URL(open.managementUrl);
  const raw = (bytes, waitMs = 1500) => withTimeout(new Promise((resolve) => {
    const s = net.connect(Number(port), '127.0.0.1', () => s.write(bytes));
    let got = '';
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    setTimeout(() => { s.destroy(); resolve(got); }, waitMs);
  }), waitMs + 1000, 'a raw management request');
  assert.match(await raw('GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400 /);
  assert.match(await raw('GET /@connections HTTP/2.0\r\n\r\n'), /^HTTP\/1\.1 505 /);
  assert.match(await raw('POST /@connections/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'), /^HTTP\/1\.1 501 /);
  // A chunked body is decoded (docs/management-api.md, "Request bodies"): an empty one is an empty push to a
  // connection that is gone.
  assert.match(await raw('POST /@connections/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n'), /^HTTP\/1\.1 410 /);
  assert.match(await raw('POST /@connections/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n'), /^HTTP\/1\.1 413 /);
  const two = await raw('GET /@connections HTTP/1.1\r\nHost: x\r\n\r\nGET /@connections/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.match(two, /^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 410 /, 'two pipelined requests, two answers in order');
  assert.equal(await raw('POST /@connections/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc', 500), '', 'a truncated body waits, no answer yet');
  const c = await Client.open(open.url);
  assert.equal((await whoami(c)).length, 22, 'the gateway still serves');
  await c.close(1000);
});

// A client that pipelines many requests and does not read its answers: the gateway stops answering (and
// reading) once 64 KiB of answers wait, instead of answering all it has read (16 KiB of "GET /console" is
// ~650 pages of 17 KB: 11 MB held per connection). When the client reads, every answer comes, in order.
test('pipelined requests from clients that do not read hold bounded memory, and all are answered once they read', async () => {
  const { port } = new URL(open.managementUrl);
  const clients = 8;
  const n = 1500;
  const page = await (await fetch(`${open.managementUrl}/console`)).text();
  const before = rssKb(open.proc.pid);
  const sockets = await Promise.all(Array.from({ length: clients }, () => new Promise((resolve) => {
    const s = net.connect(Number(port), '127.0.0.1', () => resolve(s));
    s.pause();
    // Answers counted as they come (a status line may be split across chunks: a short tail is carried).
    s.answered = 0;
    let tail = '';
    s.on('data', (d) => {
      const text = tail + d.toString('latin1');
      s.answered += (text.match(/HTTP\/1\.1 200 /g) ?? []).length;
      tail = text.slice(-12);
    });
  })));
  for (const s of sockets) s.write('GET /console HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(n));
  // RSS is measured once the gateway has done all it will do with what it read: the requests are in its
  // sockets (every write taken by the kernel) and it has used no CPU for 300 ms. The old gateway went quiet
  // only after answering everything, holding it all.
  await waitFor(() => sockets.every((s) => s.writableLength === 0), { what: 'the requests to be written' });
  await waitForCpuQuiet(open.proc.pid, { timeoutMs: 20000, what: 'the gateway to answer what it read' });
  const grownMb = (rssKb(open.proc.pid) - before) / 1024;
  // Judged by the release build's run (under ASan, freed answers wait in its quarantine).
  if (!sanitized(open.proc.pid)) assert.ok(grownMb < 16, `RSS grew ${grownMb.toFixed(1)} MB for ${clients} clients that do not read (${n} pages of ${page.length} B asked by each)`);
  for (const s of sockets) s.resume();
  const answered = () => sockets.reduce((sum, s) => sum + s.answered, 0);
  await withTimeout((async () => { while (answered() < clients * n) await new Promise((r) => setTimeout(r, 50)); })(), 30000, `${clients * n} answers`)
    .catch((err) => { throw new Error(`${err.message}: ${answered()} came`); });
  assert.equal(answered(), clients * n);
  for (const s of sockets) s.destroy();
});

// At most 1024 open management connections. At the most, a new one takes the place of the one idle the
// longest: 1024 sockets that send nothing no longer keep /healthz (and the backends' pushes) out. Only when
// every place holds a request under way does the next get 503 with a reason; a freed place is taken again.
// The sockets are held by a python3 child, which raises its own descriptor limit.
test('at 1024 open management connections a new one takes the idlest place; with none idle it gets 503 saying so', async () => {
  const { port } = new URL(open.managementUrl);
  const script = `
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
port = int(sys.argv[1])
def ask():
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')
    s.settimeout(5)
    got = b''
    try:
        while True:
            b = s.recv(65536)
            if not b: break
            got += b
    except OSError:
        pass
    s.close()
    return got.decode('latin1').split('\\r\\n')[0] + ' | ' + got.decode('latin1').split('\\r\\n\\r\\n')[-1]
def closed_by_server(socks):
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b'': n += 1
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n
silent = [socket.create_connection(('127.0.0.1', port)) for _ in range(1024)]
time.sleep(0.5)
print(ask())
deadline = time.time() + 5
closed = 0
while not closed and time.time() < deadline:  # the server's close reaches this side
    closed = closed_by_server(silent)
    if not closed: time.sleep(0.02)
print(closed)
for s in silent: s.close()
time.sleep(0.5)
# Every place with a request under way (a head not finished): none is idle.
busy = [socket.create_connection(('127.0.0.1', port)) for _ in range(1024)]
for s in busy: s.sendall(b'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n')
time.sleep(0.5)
print(ask())
for _ in range(16): busy.pop().close()  # the last ones (other clients' connections may hold places too)
time.sleep(0.5)
print(ask())
`;
  const out = execFileSync('python3', ['-c', script, port], { encoding: 'utf8', timeout: 30000 }).trim().split('\n');
  assert.match(out[0], /^HTTP\/1\.1 200 /, `with 1024 silent sockets open: ${out[0]}`);
  assert.ok(Number(out[1]) >= 1 && Number(out[1]) <= 2, `the idlest silent socket made room (${out[1]} closed)`);
  assert.match(out[2], /^HTTP\/1\.1 503 .*1024 open connections/, out[2]);
  assert.match(out[3], /^HTTP\/1\.1 200 /, out[3]);
  // This process's own kept-alive connection may have been the idlest and closed meanwhile (execFileSync
  // kept its event loop from seeing that): a request on it fails once, as on any connection a server closed.
  await waitFor(() => fetch(`${open.managementUrl}/healthz`).then((r) => r.status === 200, () => false),
                { what: 'the listener serving after the 1024 left' });
  assert.ok(open.lines.some((l) => l.msg === 'management connections at their most: the longest idle ones were closed to admit new ones'));
});

test('a management listener off loopback without credentials refuses to start, saying why', async () => {
  const r = await runExpectingExit({ routes: defaultRoutes(), plugins: ['echo', 'chat'], extraArgs: ['--management-listen', '0.0.0.0:0'] });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /credentials/);
});

test('an unbracketed IPv6 listener, or both listeners on one port, is refused before binding, saying what to write', async () => {
  const ipv6 = await runExpectingExit({ routes: defaultRoutes(), plugins: ['echo', 'chat'], extraArgs: ['--listen', '::1'] });
  assert.equal(ipv6.code, 2, ipv6.stderr);
  assert.match(ipv6.stderr, /--listen: '::1' is an IPv6 address without a port: write it in brackets, \[::1\]:PORT/);
  const mgmt = await runExpectingExit({ routes: defaultRoutes(), plugins: ['echo', 'chat'], extraArgs: ['--management-listen', '::1:9001'] });
  assert.match(mgmt.stderr, /--management-listen: '::1:9001' has an IPv6 address without brackets: write \[::1\]:9001/);
  // A port taken by nobody else: the refusal must come from the option check, not from a bind.
  const blocker = net.createServer();
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const free = blocker.address().port;
  await new Promise((resolve) => blocker.close(resolve));
  const same = await runExpectingExit({ routes: defaultRoutes(), plugins: ['echo', 'chat'],
    extraArgs: ['--listen', `127.0.0.1:${free}`, '--management-listen', `127.0.0.1:${free}`] });
  assert.notEqual(same.code, 0);
  assert.match(same.stderr, new RegExp(`--management-listen 127\\.0\\.0\\.1:${free}: port ${free} is the public listener's`));
  assert.doesNotMatch(same.stderr, /another process/);
});

test('wsgw-ctl posts, gets, lists and deletes, with the exit codes a shell expects', async () => {
  const { execFile } = await import('node:child_process');
  const ctl = (args, input) => new Promise((resolve) => {
    const p = execFile(process.env.WSGW_CTL, ['--endpoint', open.managementUrl, ...args], { timeout: 5000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
    if (input !== undefined) p.stdin.end(input);
  });
  const c = await Client.open(open.url);
  const id = await whoami(c);
  assert.equal((await ctl(['post', id, 'from-ctl'])).code, 0);
  assert.equal(await c.nextText(), 'from-ctl');
  assert.equal((await ctl(['post', id, '-'], 'from-stdin')).code, 0);
  assert.equal(await c.nextText(), 'from-stdin');
  const got = await ctl(['get', id]);
  assert.equal(got.code, 0);
  assert.equal(JSON.parse(got.stdout).identity.sourceIp, '127.0.0.1');
  const listed = await ctl(['list', '--limit', '1']);
  assert.equal(listed.code, 0);
  const ids = listed.stdout.trim().split('\n').map((l) => JSON.parse(l).connectionId);
  assert.ok(ids.includes(id));
  assert.equal((await ctl(['delete', id])).code, 0);
  await c.waitClosed(3000);
  const gone = await ctl(['get', id]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /410/);
  assert.equal((await ctl(['post'])).code, 2);
  assert.equal((await ctl(['frobnicate', id])).code, 2);
  const down = await new Promise((resolve) => execFile(process.env.WSGW_CTL, ['--endpoint', 'http://127.0.0.1:1', 'get', id],
    (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr })));
  assert.equal(down.code, 4);
  assert.match(down.stderr, /cannot connect/);
});

test('over --management-rate the gateway answers 429 LimitExceededException and recovers', async () => {
  const gw = await Gateway.start({ routes: defaultRoutes(), plugins: ['echo', 'chat'], extraArgs: ['--management-rate', '5'] });
  try {
    const statuses = [];
    for (let i = 0; i < 20; i++) {
      const r = await call(gw, 'GET', '/@connections');
      statuses.push(r.status);
      if (r.status === 429) {
        assert.equal(r.headers.get('x-amzn-errortype'), 'LimitExceededException');
        assert.match(r.json.message, /Too Many Requests/);
      }
    }
    assert.ok(statuses.filter((s) => s === 200).length >= 5, `the burst is served: ${statuses}`);
    assert.ok(statuses.includes(429), `then 429: ${statuses}`);
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await call(gw, 'GET', '/@connections')).status, 200, 'tokens come back with time');
  } finally {
    await gw.stop();
  }
});
