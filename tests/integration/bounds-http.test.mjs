// Bounded resources on the management listener and at the descriptor limit, with real sockets: request bodies
// sent with Transfer-Encoding: chunked (raw, in pieces, and by Node's http), the 131072-decoded-byte limit,
// malformed chunk sizes, Expect: 100-continue, keep-alive after each; and the real binary under
// `prlimit --nofile=256:256` with both listeners flooded: no busy loop, rare warnings, the counter, live
// connections served, and accepting again once descriptors are free.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { Gateway, Client, cpuSeconds, defaultRoutes, flood, probeRoutes, whoami, parseHttpResponse, waitFor, withTimeout, sleep } from './harness.mjs';

let gw;  // probe routes, no credentials

before(async () => {
  gw = await Gateway.start({ routes: probeRoutes({ routes: ['whoami'] }), plugins: ['probe'] });
});

after(async () => {
  await gw?.stop();
});

const managementPort = (g) => Number(new URL(g.managementUrl).port);

// A keep-alive TCP connection to the management port: writes bytes (each write flushed before the next,
// with Nagle off, so pieces travel as separate segments) and reads the responses one after the other.
class HttpConn {
  static async open(port) {
    const c = new HttpConn();
    c.sock = net.connect({ host: '127.0.0.1', port });
    c.sock.setNoDelay(true);
    c.buf = Buffer.alloc(0);
    c.ended = false;
    c.wake = null;
    c.sock.on('data', (d) => { c.buf = Buffer.concat([c.buf, d]); c.wake?.(); });
    c.sock.on('close', () => { c.ended = true; c.wake?.(); });
    c.sock.on('error', () => { c.ended = true; c.wake?.(); });
    await withTimeout(new Promise((resolve, reject) => { c.sock.once('connect', resolve); c.sock.once('error', reject); }), 5000, 'TCP connect');
    return c;
  }

  write(bytes) {
    return new Promise((resolve, reject) => this.sock.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  async writePieces(pieces) {
    for (const p of pieces) await this.write(p);
  }

  until(pred, what, timeoutMs = 5000) {
    return withTimeout(new Promise((resolve, reject) => {
      const check = () => {
        const v = pred();
        if (v) { this.wake = null; resolve(v); } else if (this.ended) { this.wake = null; reject(new Error(`connection closed before ${what}; got ${JSON.stringify(this.buf.toString('latin1'))}`)); }
      };
      this.wake = check;
      check();
    }), timeoutMs, what);
  }

  // The next complete response (its bytes are taken off the buffer).
  async response(timeoutMs = 5000) {
    const r = await this.until(() => {
      const p = parseHttpResponse(this.buf);
      return p && p.complete ? p : null;
    }, 'a complete HTTP response', timeoutMs);
    this.buf = Buffer.from(r.rest);
    return r;
  }

  destroy() {
    this.sock.destroy();
  }
}

function chunk(data) {
  const b = Buffer.from(data);
  return Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]);
}

async function connected(g = gw) {
  const c = await Client.open(g.url);
  return { c, id: await whoami(c) };
}

test('a chunked POST sent in pieces is delivered decoded, and the connection serves the next request', async () => {
  const { c, id } = await connected();
  const h = await HttpConn.open(managementPort(gw));
  await h.writePieces([
    `POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`,
    '5\r\nhel', 'lo\r\n',                     // a chunk split inside its data
    'B;name=value\r', '\n world, in \r',      // upper-case hex size with an extension, split inside both CRLFs
    '\nd\r\nmany pieces\r\n\r\n',             // lower-case hex; the data ends with CRLF bytes of its own
    '0\r\nX-Trailer: ignored\r\n', '\r\n',    // the last chunk, a trailer, the end
  ]);
  const r = await h.response();
  assert.equal(r.status, 200, r.body);
  assert.equal(await c.nextText(), 'hello world, in many pieces\r\n');
  // Keep-alive: the same socket takes a Content-Length request and another chunked one.
  await h.write(`POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond`);
  assert.equal((await h.response()).status, 200);
  assert.equal(await c.nextText(), 'second');
  await h.write(Buffer.concat([Buffer.from(`POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`),
    chunk('thi'), chunk('rd'), Buffer.from('0\r\n\r\n')]));
  assert.equal((await h.response()).status, 200);
  assert.equal(await c.nextText(), 'third');
  h.destroy();
  await c.close(1000);
});

test("Node's http.request without Content-Length (chunked) delivers its body", async () => {
  const { c, id } = await connected();
  const status = await withTimeout(new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: managementPort(gw), method: 'POST', path: `/@connections/${id}` }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.write('from ');
    req.write('node ');
    req.end('http');
  }), 5000, 'the answer to a chunked http.request');
  assert.equal(status, 200);
  assert.equal(await c.nextText(), 'from node http');
  await c.close(1000);
});

test('over 131072 decoded bytes gets 413; a malformed chunk size gets 400; each with a JSON reason', async () => {
  const { c, id } = await connected();
  // 16 chunks of 8192 bytes are exactly the limit; one more byte is over it. No single chunk is large.
  const over = [Buffer.from(`POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`)];
  for (let i = 0; i < 16; i++) over.push(chunk(Buffer.alloc(8192, 'a')));
  over.push(chunk('b'), Buffer.from('0\r\n\r\n'));
  const h = await HttpConn.open(managementPort(gw));
  await h.write(Buffer.concat(over));
  const big = await h.response();
  assert.equal(big.status, 413);
  assert.equal(big.headers['x-amzn-errortype'], 'PayloadTooLargeException');
  assert.match(JSON.parse(big.body).message, /131072/);
  h.destroy();

  const b = await HttpConn.open(managementPort(gw));
  await b.write(`POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n`);
  const bad = await b.response();
  assert.equal(bad.status, 400);
  assert.equal(bad.headers['x-amzn-errortype'], 'BadRequestException');
  assert.match(JSON.parse(bad.body).message, /malformed chunk size/);
  b.destroy();

  // Neither delivered anything; the connection is served as before.
  const ok = await HttpConn.open(managementPort(gw));
  await ok.write(`POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nafter`);
  assert.equal((await ok.response()).status, 200);
  assert.equal(await c.nextText(), 'after');
  ok.destroy();
  await c.close(1000);
});

test('Expect: 100-continue gets 100 Continue before the body, then 200; a request its head condemns gets its answer instead', async () => {
  const { c, id } = await connected();
  const h = await HttpConn.open(managementPort(gw));
  await h.write(`POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n`);
  await h.until(() => h.buf.length >= 25, '100 Continue');
  assert.equal(h.buf.toString('latin1'), 'HTTP/1.1 100 Continue\r\n\r\n');
  h.buf = Buffer.alloc(0);
  await h.write('continued');
  assert.equal((await h.response()).status, 200);
  assert.equal(await c.nextText(), 'continued');
  // Keep-alive, chunked this time, with Expect again.
  await h.write(`POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n`);
  await h.until(() => h.buf.length >= 25, 'the second 100 Continue');
  assert.equal(h.buf.toString('latin1'), 'HTTP/1.1 100 Continue\r\n\r\n');
  h.buf = Buffer.alloc(0);
  await h.write(Buffer.concat([chunk('again'), Buffer.from('0\r\n\r\n')]));
  assert.equal((await h.response()).status, 200);
  assert.equal(await c.nextText(), 'again');
  h.destroy();

  for (const [head, status] of [
    ['POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n', 404],
    [`POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nContent-Length: 131073\r\nExpect: 100-continue\r\n\r\n`, 413],
    ['POST /@connections/not-an-id HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n', 400],
  ]) {
    const r = await HttpConn.open(managementPort(gw));
    await r.write(head);
    const answer = await r.response();
    assert.equal(answer.status, status, head);
    assert.equal(typeof JSON.parse(answer.body).message, 'string');
    r.destroy();
  }
  await c.close(1000);
});

// The request timeout is 15 s unless --management-request-timeout says otherwise (tests/gateway/core/options_test
// checks the default); here it is 3 s, so the 408 comes without a 15 s wait.
const REQUEST_TIMEOUT_S = 3;

test(`a request not complete within --management-request-timeout (${REQUEST_TIMEOUT_S} s here: a chunked body without its last chunk, a head without its end) gets 408; an idle connection just closes`, { timeout: 40000 }, async () => {
  const timed = await Gateway.start({ routes: probeRoutes({ routes: ['whoami'] }), plugins: ['probe'],
    extraArgs: ['--management-request-timeout', String(REQUEST_TIMEOUT_S)] });
  try {
    const { c, id } = await connected(timed);
    const body = await HttpConn.open(managementPort(timed));
    const head = await HttpConn.open(managementPort(timed));
    const idle = await HttpConn.open(managementPort(timed));
    const began = Date.now();
    await body.write(Buffer.concat([Buffer.from(`POST /@connections/${id} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`), chunk('never ')]));
    await head.write(`GET /@connections/${id} HTTP/1.1\r\nHost: x\r\n`);
    for (const h of [body, head]) {
      const r = await h.response(20000);
      assert.equal(r.status, 408, r.body);
      assert.equal(r.headers['connection'], 'close');
      const answer = JSON.parse(r.body);
      assert.match(answer.message, new RegExp(`not complete within ${REQUEST_TIMEOUT_S} s`));
      await h.until(() => h.ended, 'the connection to close after 408', 5000);
    }
    const took = Date.now() - began;
    assert.ok(took >= (REQUEST_TIMEOUT_S - 1) * 1000 && took < (REQUEST_TIMEOUT_S + 5) * 1000, `408 after ${took} ms`);
    await idle.until(() => idle.ended, 'the idle connection to close', 5000);
    assert.equal(idle.buf.length, 0, `an idle connection gets no answer: ${idle.buf.toString('latin1')}`);
    // The unfinished push was not delivered: the next push is the first thing the client gets.
    assert.equal((await fetch(`${timed.managementUrl}/@connections/${id}`, { method: 'POST', body: 'after' })).status, 200);
    assert.equal(await c.nextText(), 'after');
    await c.close(1000);
  } finally {
    await timed.stop();
  }
});

test('a connection ID with %00 or a malformed percent-escape gets 400 BadRequestException, not 404', async () => {
  for (const p of ['/@connections/%00bad', '/@connections/ab%zz', '/prod/@connections/abc%']) {
    const res = await fetch(gw.managementUrl + p, { method: 'POST', body: 'x' });
    assert.equal(res.status, 400, p);
    assert.equal(res.headers.get('x-amzn-errortype'), 'BadRequestException');
    assert.match((await res.json()).message, /percent-encoding/);
  }
});

// ---- descriptor exhaustion ---------------------------------------------------------------------------------

const acceptWarnings = (lines, listener) => lines.filter((l) => /^accept failed/.test(l.msg ?? '') && l.listener === listener);

test('out of descriptors, both listeners pause instead of spinning; live connections are served; accepting resumes', { timeout: 120000 }, async () => {
  const limited = await Gateway.start({ routes: defaultRoutes(), plugins: ['echo', 'chat'], wrapper: ['prlimit', '--nofile=256:256', '--'] });
  const extra = [];
  try {
    const pid = limited.proc.pid;
    // prlimit execs wsgw in its own process, so this PID is the gateway's (its CPU is what is measured).
    assert.equal(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'wsgw');
    const limits = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
    assert.match(limits, /Max open files\s+256\s+256/, 'the gateway runs under the descriptor limit');
    const probe = await Client.open(limited.url);
    assert.equal(await probe.request('before'), 'before');

    extra.push(...flood(limited.port, 400));
    await limited.waitForLog((l) => acceptWarnings([l], 'public').length > 0, 15000, 'the public listener to run out of descriptors');
    extra.push(...flood(managementPort(limited), 100));
    await limited.waitForLog((l) => acceptWarnings([l], 'management').length > 0, 15000, 'the management listener to run out of descriptors');

    // A 2 s window while exhausted (the sockets stay queued): CPU and warnings are measured over it.
    const linesBefore = limited.lines.length;
    const cpuBefore = cpuSeconds(pid);
    const startedAt = Date.now();
    assert.equal(await probe.request('during', 5000), 'during', 'a live connection is served while accepts fail');
    await sleep(Math.max(0, 2000 - (Date.now() - startedAt)));  // the measurement window, not a synchronisation
    const cpuShare = (cpuSeconds(pid) - cpuBefore) / ((Date.now() - startedAt) / 1000);
    const windowLines = limited.lines.slice(linesBefore);
    assert.ok(limited.alive(), 'the gateway is alive');
    assert.ok(cpuShare < 0.2, `CPU while out of descriptors: ${(cpuShare * 100).toFixed(1)} % of a core (a busy accept loop takes 30-50 %)`);
    assert.ok(acceptWarnings(windowLines, 'public').length <= 2, `public warnings in 2 s: ${acceptWarnings(windowLines, 'public').length}`);
    assert.ok(acceptWarnings(windowLines, 'management').length <= 2, `management warnings in 2 s: ${acceptWarnings(windowLines, 'management').length}`);
    const warning = acceptWarnings(limited.lines, 'management')[0];
    assert.ok(warning.failures >= 1 && warning.level === 'warn', JSON.stringify(warning));
    process.stderr.write(`bounds-http: CPU ${(cpuShare * 100).toFixed(1)} % of a core while out of descriptors; ` +
      `${windowLines.length} log lines in the window\n`);

    for (const s of extra.splice(0)) s.destroy();
    const fresh = await waitFor(async () => {
      try {
        return await Client.open(limited.url, {}, 1000);
      } catch {
        return null;
      }
    }, { timeoutMs: 15000, intervalMs: 200, what: 'a new WebSocket connection after the sockets closed' });
    assert.equal(await fresh.request('fresh'), 'fresh');
    const metrics = await waitFor(async () => {
      try {
        const res = await fetch(`${limited.managementUrl}/metrics`);
        return res.status === 200 ? await res.text() : null;
      } catch {
        return null;
      }
    }, { timeoutMs: 15000, intervalMs: 200, what: 'GET /metrics after the sockets closed' });
    const m = /^wsgw_accept_errors_total (\d+)$/m.exec(metrics);
    assert.ok(m && Number(m[1]) > 0, `wsgw_accept_errors_total: ${m?.[0]}`);
    assert.equal(await probe.request('after'), 'after');
    await fresh.close(1000);
    await probe.close(1000);
  } finally {
    for (const s of extra) s.destroy();
    await limited.stop();
  }
});
