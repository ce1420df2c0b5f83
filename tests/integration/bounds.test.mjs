// The limits of docs/limits.md through the real gateway: what an unfriendly client can make it hold. A client
// that stops reading (its socket paused, so the kernel buffers fill and the gateway's send queue is all that
// grows), a management API or handler that pushes to it, a client that pipelines to a slow route, a DELETE of a
// connection whose queue is full, and compressed messages that inflate past the limit, ten and twenty at
// once (another connection's echoes timed meanwhile); and, with its own gateway, the receive-side byte bound
// (maxPendingBytes) against a client pipelining 30 KB messages. Each test checks the gateway's resident
// memory (/proc/PID/status), the close code and reason, the answers the senders got, and that another
// connection is served meanwhile. (Closes with a full queue: bounds-close.test.mjs.)
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';
import net from 'node:net';
import zlib from 'node:zlib';
import { Client, Gateway, RawWebSocket, ctx, eventsOf, maskedFrame, metricValue, probeRoutes, readEvents, rssKb, sanitized, sleep, waitFor, whoami, withTimeout } from './harness.mjs';

const SLOW = 'Slow consumer: send queue over maxSendQueueBytes';

function assertRssGrowth(gw, rss0, maxKb, what = '') {
  const grown = rssKb(gw.proc.pid) - rss0;
  if (!sanitized(gw.proc.pid)) assert.ok(grown < maxKb, `RSS grew by ${grown} kB${what}`);
}

function metric(text, name) {
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

async function metrics(gw) {
  const res = await fetch(`${gw.managementUrl}/metrics`);
  return res.text();
}

// A connection that stops reading: the raw socket is paused, so nothing is taken from the kernel.
async function stalledClient(gw) {
  const raw = await RawWebSocket.open(gw.port);
  assert.equal(raw.response.status, 101);
  raw.sock.pause();
  return raw;
}

async function connectionIdOf(gw, before) {
  // The newest $connect in the probe's log that is not in `before`.
  return waitFor(() => {
    return connectIds(gw).find((id) => !before.includes(id));
  }, { what: 'the stalled client\'s $connect' });
}

function connectIds(gw) {
  return readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'CONNECT').map((e) => ctx(e).connectionId);
}

function disconnectOf(gw, id) {
  return eventsOf(gw.eventsPath, id, 'DISCONNECT')[0];
}

// POSTs `body` to @connections/{id} over a keep-alive agent; resolves with the status.
function post(gw, agent, id, body) {
  const url = new URL(`${gw.managementUrl}/@connections/${id}`);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent,
      headers: { 'Content-Length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// A client that sends 30 KB echoes and never reads: closed with 1008, the gateway's memory bounded, other
// connections served.
async function stalledEchoIsClosed(gw) {
  const probe = await Client.open(gw.url);
  const before = connectIds(gw);
  const raw = await stalledClient(gw);
  const id = await connectionIdOf(gw, before);
  const rss0 = rssKb(gw.proc.pid);
  const frame = maskedFrame(1, Buffer.alloc(30000, 'e'));
  // 1,500 echoes (45 MB): without the bound the gateway would hold all of what the kernel does not take.
  let written = 0;
  // (The probe's event log grows with every echo: it is read once per 50 frames, not once per frame.)
  for (; written < 1500 && !raw.closedSocket && (written % 50 !== 0 || !disconnectOf(gw, id)); written++) {
    if (!raw.sock.write(frame)) await Promise.race([new Promise((r) => raw.sock.once('drain', r)), new Promise((r) => setTimeout(r, 50))]);
  }
  const disc = await waitFor(() => disconnectOf(gw, id), { timeoutMs: 15000, what: '$disconnect of the stalled client' });
  assert.equal(disc.requestContext.disconnectStatusCode, 1008);
  assert.equal(disc.requestContext.disconnectReason, SLOW);
  assertRssGrowth(gw, rss0, 64 * 1024);
  assert.equal(await probe.request('still-served'), 'still-served', 'other connections are served');
  const m = await metrics(gw);
  assert.ok(metric(m, 'wsgw_slow_consumer_closes_total') >= 1);
  raw.destroy();
  await probe.close();
}

describe('send queue, close deadline, receive bound, deflate bombs', () => {
  let gw;
  before(async () => {
    gw = await Gateway.start({
      routes: (dir) => ({
        ...probeRoutes({ routes: ['sleep', 'flood', 'whoami'] })(dir),
        limits: { maxSendQueueBytes: 1048576, maxPendingMessages: 64, maxPendingBytes: 1048576, maxMessageBytes: 131072 },
      }),
      plugins: ['probe'],
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test('a client that sends 30 KB echoes and never reads is closed with 1008 and the memory stays bounded', async () => {
    await stalledEchoIsClosed(gw);
  });

  test('pushes to a client that reads nothing: 200 until the bound, then 410, and the client is closed with 1008', async () => {
    const before = connectIds(gw);
    const raw = await stalledClient(gw);
    const id = await connectionIdOf(gw, before);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const body = Buffer.alloc(8192, 'p');
    const statuses = [];
    const rss0 = rssKb(gw.proc.pid);
    // At most 20,480 pushes of 8 KiB (160 MiB); the loop ends at the first 410.
    for (let i = 0; i < 20480; i++) {
      const status = await post(gw, agent, id, body);
      statuses.push(status);
      if (status !== 200) break;
    }
    const first410 = statuses.indexOf(410);
    assert.ok(first410 > 0, `a 410 came after some 200s (statuses: ${statuses.length}, last ${statuses.at(-1)})`);
    assert.ok(statuses.slice(0, first410).every((s) => s === 200));
    // Every later push is refused too: the connection is gone for senders.
    for (let i = 0; i < 5; i++) assert.equal(await post(gw, agent, id, body), 410);
    const disc = await waitFor(() => disconnectOf(gw, id), { timeoutMs: 10000, what: '$disconnect after the overflow' });
    assert.equal(disc.requestContext.disconnectStatusCode, 1008);
    assert.equal(disc.requestContext.disconnectReason, SLOW);
    assertRssGrowth(gw, rss0, 64 * 1024, ` for ${first410} accepted pushes`);
    agent.destroy();
    raw.destroy();
  });

  test('a handler pushing 200,000 times to a stalled connection gets WSGW_GONE once the queue is full', async () => {
    const caller = await Client.open(gw.url);
    const before = connectIds(gw);
    const raw = await stalledClient(gw);
    const id = await connectionIdOf(gw, before);
    const rss0 = rssKb(gw.proc.pid);
    const answer = await caller.request(JSON.stringify({ action: 'flood', to: id, count: 200000, size: 1024 }), 30000);
    const [, ok, gone] = /^ok:(\d+) gone:(\d+)$/.exec(answer).map(Number);
    assert.equal(ok + gone, 200000);
    assert.ok(gone > 0 && ok < 100000, `ok ${ok}, gone ${gone}`);
    const disc = await waitFor(() => disconnectOf(gw, id), { timeoutMs: 10000, what: '$disconnect after the flood' });
    assert.equal(disc.requestContext.disconnectReason, SLOW);
    assertRssGrowth(gw, rss0, 64 * 1024);
    raw.destroy();
    await caller.close();
  });

  test('pipelining to a slow route pauses reading: memory bounded, the reads resume, others are served', async () => {
    const probe = await Client.open(gw.url);
    const flooder = await Client.open(gw.url);
    const rss0 = rssKb(gw.proc.pid);
    const m0 = metric(await metrics(gw), 'wsgw_reads_paused_total');
    const msg = JSON.stringify({ action: 'sleep', ms: 20, pad: 'x'.repeat(4000) });
    // 4,000 messages of 4 KB to a route that takes 20 ms each: 80 s of work, queued in the client and TCP.
    for (let i = 0; i < 4000; i++) flooder.ws.send(msg);
    await waitFor(async () => metric(await metrics(gw), 'wsgw_reads_paused_total') > m0, { timeoutMs: 5000, what: 'a paused read' });
    const started = Date.now();
    assert.equal(await probe.request('served-meanwhile'), 'served-meanwhile');
    assert.ok(Date.now() - started < 2000, 'another connection is answered while the flooder waits');
    const pending = metric(await metrics(gw), 'wsgw_pending_bytes');
    assert.ok(pending <= 1048576 + 131072, `pending bytes ${pending}`);
    // Replies keep coming: reading resumed after the lane went below half (more than 64 messages answered).
    for (let i = 0; i < 150; i++) assert.equal(await flooder.nextText(5000), 'slept');
    assertRssGrowth(gw, rss0, 32 * 1024);
    flooder.ws.terminate();
    await probe.close();
  });

  test('DELETE of a connection whose queue holds data closes it within the 5 s deadline', async () => {
    const caller = await Client.open(gw.url);
    const before = connectIds(gw);
    const raw = await stalledClient(gw);
    const id = await connectionIdOf(gw, before);
    // Fill the kernel's buffers and part of the queue, below the bound, 100 KiB at a time.
    let answer = '';
    for (let i = 0; i < 100; i++) {
      answer = await caller.request(JSON.stringify({ action: 'flood', to: id, count: 100, size: 1024 }), 10000);
      if (!/gone:0$/.test(answer) || metric(await metrics(gw), 'wsgw_send_queue_bytes') > 200000) break;
    }
    assert.match(answer, /gone:0$/, 'below the bound');
    assert.ok(metric(await metrics(gw), 'wsgw_send_queue_bytes') > 0, 'frames wait in the send queue');
    const started = Date.now();
    const res = await fetch(`${gw.managementUrl}/@connections/${id}`, { method: 'DELETE' });
    assert.equal(res.status, 204);
    const disc = await waitFor(() => disconnectOf(gw, id), { timeoutMs: 9000, what: '$disconnect after DELETE' });
    const took = Date.now() - started;
    assert.ok(took < 7000, `closed after ${took} ms`);
    assert.equal(disc.requestContext.disconnectStatusCode, 1000);
    assert.equal((await fetch(`${gw.managementUrl}/@connections/${id}`)).status, 410);
    // The client's socket was reset: reading it again ends soon.
    raw.sock.resume();
    await withTimeout(new Promise((resolve) => { if (raw.closedSocket) resolve(); else raw.sock.once('close', resolve); }), 10000, 'the reset socket to close');
    assert.equal(metric(await metrics(gw), 'wsgw_send_queue_bytes'), 0, 'nothing left queued');
    await caller.close();
  });

  test('ten permessage-deflate clients each sending a 1 MiB message of zeros at once all get 1009', async () => {
    const probe = await Client.open(gw.url);
    const bombs = await Promise.all(Array.from({ length: 10 }, () => Client.open(gw.url, { perMessageDeflate: true })));
    const zeros = '\0'.repeat(1 << 20);
    for (const b of bombs) b.ws.send(zeros, { compress: true });
    const closes = await Promise.all(bombs.map((b) => b.waitClosed(8000)));
    assert.deepEqual(closes.map((c) => c.code), Array(10).fill(1009));
    assert.equal(await probe.request('after-bombs'), 'after-bombs');
    await probe.close();
  });
  test('twenty raw deflate bombs of 16 MiB (level 9, sync-flushed) sent right after the upgrade all get 1009', async () => {
    // Once 1 in 40 hung under the sanitizers' timing: libwebsockets' inflater read another connection's bytes
    // from the thread's shared read buffer (see net/permessage_deflate.h).
    const probe = await Client.open(gw.url);
    const comp = zlib.deflateRawSync(Buffer.alloc(16 << 20), { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const payload = comp.subarray(0, comp.length - 4);  // RFC 7692: the sync flush's 00 00 ff ff is left off
    const frame = () => {
      const mask = crypto.randomBytes(4);
      const head = Buffer.from([0xc1, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);  // FIN, RSV1, text
      const body = Buffer.from(payload);
      for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
      return Buffer.concat([head, mask, body]);
    };
    const bomb = () => new Promise((resolve) => {
      const sock = net.connect(gw.port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      let upgraded = false;
      const timer = setTimeout(() => { sock.destroy(); resolve('no close within 10 s'); }, 10000);
      sock.on('connect', () => sock.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n`));
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (!upgraded) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          upgraded = true;
          buf = buf.subarray(end + 4);
          sock.write(frame());
          echo();
        }
        if (buf.length >= 4 && (buf[0] & 0x0f) === 8) {
          clearTimeout(timer);
          sock.destroy();
          resolve(buf.readUInt16BE(2));
        }
      });
      sock.on('error', () => {});
      sock.on('close', () => { clearTimeout(timer); resolve(upgraded ? 'closed without a close frame' : 'refused'); });
    });
    // Another connection sends an echo right after each bomb is written, and every 10 ms besides, each timed
    // from its send to its answer: the delay is how long the bombs held that connection's network thread.
    // Inflation of 16 MiB on the network thread (issue 16) held it for 599 ms; bounded and kept off that
    // thread, the echoes took 7-19 ms by hand. 250 ms is generous: it catches the starvation, not a slow machine.
    const sentAt = new Map();
    const delays = [];
    probe.ws.on('message', (data) => {
      const at = sentAt.get(data.toString());
      if (at !== undefined) delays.push(Date.now() - at);
    });
    let sent = 0;
    const echo = () => {
      if (sent >= 2000) return;
      const text = `during-bombs-${sent++}`;
      sentAt.set(text, Date.now());
      probe.send(text);
    };
    const pacer = setInterval(echo, 10);
    const results = await Promise.all(Array.from({ length: 20 }, bomb)).finally(() => clearInterval(pacer));
    assert.deepEqual(results, Array(20).fill(1009));
    const echoed = await probe.collectTexts(sent, 10000);
    assert.deepEqual(echoed, Array.from({ length: sent }, (_, n) => `during-bombs-${n}`), 'every echo answered, in order');
    assert.ok(delays.length >= 20, `${delays.length} echoes sent while the bombs were in flight`);
    assert.ok(Math.max(...delays) < 250, `the probe's echoes during the bombs took up to ${Math.max(...delays)} ms (${delays.length} echoes)`);
    console.log(`# probe echo during 20 deflate bombs: ${delays.length} echoes, max ${Math.max(...delays)} ms`);
    assert.equal(await probe.request('after-raw-bombs'), 'after-raw-bombs');
    await probe.close();
  });
});

// maxPendingBytes alone (the message bound set out of reach): a client pipelines 400 messages of 30 KB
// (12 MB) to a route whose handler takes 10 ms each. Without the byte bound the gateway reads all it is
// sent: wsgw_pending_bytes climbs towards 12 MB, RSS peaks 11 MB higher and the reads never pause (measured
// with maxPendingBytes set to 64 MiB: each of those three assertions fails; with the bound, 1.05 MB and
// +1.8 MB); with only the default message bound (64) it would reach 64 x 30 KB = 1.9 MB, over the bound.
describe('the receive-side byte bound (maxPendingBytes)', () => {
  const MAX_PENDING_BYTES = 1048576;
  const COUNT = 400;
  let gw;
  before(async () => {
    gw = await Gateway.start({
      routes: (dir) => ({
        ...probeRoutes({ routes: ['sleep', 'whoami'] })(dir),
        limits: { maxPendingMessages: 1000000, maxPendingBytes: MAX_PENDING_BYTES, maxMessageBytes: 131072 },
      }),
      plugins: ['probe'],
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test('400 x 30 KB pipelined to a slow route: pending bytes within the bound, reading pauses, RSS bounded, all answered in order, others served', async () => {
    const probe = await Client.open(gw.url);
    const flooder = await Client.open(gw.url);
    const flooderId = await whoami(flooder);
    assert.equal(await probe.request('warm'), 'warm');
    const rss0 = rssKb(gw.proc.pid);
    const paused0 = metric(await metrics(gw), 'wsgw_reads_paused_total');
    const pad = 'x'.repeat(30000);
    for (let seq = 0; seq < COUNT; seq++) flooder.ws.send(JSON.stringify({ action: 'sleep', ms: 10, seq, pad }));
    const answered = flooder.collectTexts(COUNT, 60000);
    let flooding = true;
    answered.finally(() => { flooding = false; }).catch(() => {});
    // Sampled while the replies come: the gateway's pending bytes and its resident memory.
    let maxPending = 0;
    let maxRss = rss0;
    const sampler = (async () => {
      for (let n = 0; flooding && n < 3000; n++) {
        maxPending = Math.max(maxPending, metric(await metrics(gw), 'wsgw_pending_bytes'));
        maxRss = Math.max(maxRss, rssKb(gw.proc.pid));
        await sleep(20);  // a sampling interval, not a wait for something
      }
    })();
    // Another connection's echoes meanwhile, one every 100 ms: each must come back promptly.
    const delays = [];
    const prober = (async () => {
      for (let n = 0; flooding && n < 600; n++) {
        const sentAt = Date.now();
        assert.equal(await probe.request(`meanwhile-${n}`, 5000), `meanwhile-${n}`);
        delays.push(Date.now() - sentAt);
        await sleep(100);  // a pace, not a wait for something
      }
    })();
    sampler.catch(() => {});  // both awaited below; a failure is reported there
    prober.catch(() => {});
    const replies = await answered;
    await Promise.all([sampler, prober]);

    assert.deepEqual(replies, Array(COUNT).fill('slept'), 'every message answered');
    const seqs = eventsOf(gw.eventsPath, flooderId, 'MESSAGE').map((e) => JSON.parse(e.body).seq).filter((s) => s !== undefined);
    assert.deepEqual(seqs, Array.from({ length: COUNT }, (_, i) => i), 'every message handled, once and in order');
    // The bound is checked after a message is added: one message (and what the read had already taken off
    // the socket) may pass it, never 12 MB.
    assert.ok(maxPending > 0 && maxPending <= MAX_PENDING_BYTES + 131072, `wsgw_pending_bytes reached ${maxPending}`);
    assert.ok(metric(await metrics(gw), 'wsgw_reads_paused_total') > paused0, 'reading paused at the bound');
    if (!sanitized(gw.proc.pid)) assert.ok(maxRss - rss0 < 6 * 1024, `RSS peaked ${maxRss - rss0} kB above its start`);
    assert.ok(delays.length >= 3, `${delays.length} echoes of the other connection during the flood`);
    assert.ok(Math.max(...delays) < 500, `the other connection's echoes took up to ${Math.max(...delays)} ms`);
    console.log(`# byte bound: pending max ${maxPending} B, RSS peak +${maxRss - rss0} kB, ${delays.length} echoes meanwhile, max ${Math.max(...delays)} ms`);
    await flooder.close();
    await probe.close();
  });
});

describe('the send queue bound with an "inline" echo (answered on the network thread)', () => {
  test('a client that sends 30 KB echoes and never reads is closed with 1008 and the memory stays bounded', async () => {
    const gw = await Gateway.start({
      routes: (dir) => {
        const table = probeRoutes({ routes: ['whoami'] })(dir);
        table.handlers.probe.inline = true;
        return { ...table, limits: { maxSendQueueBytes: 1048576, maxPendingMessages: 64, maxPendingBytes: 1048576, maxMessageBytes: 131072 } };
      },
      plugins: ['probe'],
    });
    try {
      await stalledEchoIsClosed(gw);
      assert.ok(await metricValue(gw, 'wsgw_inline_invocations_total') > 100, 'the echoes ran inline');
    } finally {
      await gw.stop();
    }
  });
});
