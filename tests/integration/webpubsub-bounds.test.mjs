// What an unfriendly Azure Web PubSub client or REST caller can make the gateway hold or spend
// (docs/webpubsub.md, docs/limits.md): the real gateway, raw sockets and the `ws` client on Microsoft's JSON
// subprotocol, tokens from @azure/web-pubsub. A REST request whose chunked body never ends (chunk extensions
// of 4,000 bytes around one-byte chunks, sent before any token is checked) is refused with 413 at a bound,
// without a core spent re-reading it; a subprotocol client of a cluster node that publishes while Redis does
// not answer is held back by TCP at its pending bounds instead of queueing its messages in the gateway.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Gateway, WebSocket, cpuSeconds, rssKb, sanitized, waitFor, waitForCpuQuiet, withTimeout } from './harness.mjs';
import { WebPubSubServiceClient } from '@azure/web-pubsub';
import { RedisServer } from './redis-server.mjs';

const KEY = 'wsgw-bounds-access-key-0123456789abcdefghij';
const started = [];
after(async () => {
  for (const stop of started.reverse()) await stop().catch(() => {});
});

function routes(dir) {
  return {
    routeSelectionExpression: '$request.body.action',
    webPubSub: { hubs: ['chat'], accessKeys: [KEY], recoveryWindowSeconds: 0 },
    limits: { maxFrameBytes: 131072 },  // the publishes below are one frame each
    handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
    routes: { $default: { handler: 'echo', routeResponse: true } },
  };
}

async function startGateway(extraArgs = []) {
  const gw = await Gateway.start({ routes, plugins: ['echo', 'probe'], extraArgs: ['--access-log', 'off', ...extraArgs] });
  started.push(() => gw.stop());
  return gw;
}

function service(gw) {
  return new WebPubSubServiceClient(`Endpoint=http://127.0.0.1:${gw.port};AccessKey=${KEY};Version=1.0;`, 'chat',
                                    { allowInsecureConnection: true });
}

test('a REST request whose chunked body never ends is refused with 413 at once, without a core spent on it', async (t) => {
  const gw = await startGateway();
  const cpuBefore = cpuSeconds(gw.proc.pid);
  const rssBefore = rssKb(gw.proc.pid);
  const sock = net.connect({ host: '127.0.0.1', port: gw.port });
  let received = '';
  let sent = 0;
  const ended = new Promise((resolve) => {
    sock.on('data', (d) => { received += d.toString('latin1'); });
    sock.on('error', () => resolve('error'));
    sock.on('close', () => resolve('close'));
  });
  await new Promise((resolve) => sock.once('connect', resolve));
  sock.write(`POST /api/hubs/chat/:send?api-version=2024-12-01 HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\n` +
             'Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n');
  // One-byte chunks, each with a 4,000-byte extension: 4 KB on the wire per byte of body. Up to 64 MB, as fast
  // as the socket takes them, until the gateway answers or closes.
  const chunk = Buffer.from(`1;${'e'.repeat(4000)}\r\nx\r\n`);
  const pump = (async () => {
    const started = Date.now();
    while (!sock.destroyed && received === '' && sent < (64 << 20) && Date.now() - started < 8000) {
      const piece = Buffer.concat(Array(64).fill(chunk));
      sent += piece.length;
      if (!sock.write(piece)) await new Promise((resolve) => { sock.once('drain', resolve); sock.once('close', resolve); });
    }
  })();
  const how = await withTimeout(ended, 12000, 'the gateway to end the request');
  await pump;
  const cpu = cpuSeconds(gw.proc.pid) - cpuBefore;
  const grewKb = rssKb(gw.proc.pid) - rssBefore;
  t.diagnostic(`${sent} bytes sent before the gateway ended the request (${how}); CPU ${cpu.toFixed(2)} s; grew ${grewKb} kB; answer ${received.slice(0, 12) || 'none'}`);
  // The answer may be lost to the reset of the bytes it did not read; when it arrives, it is the 413.
  if (received) assert.match(received, /^HTTP\/1\.1 413 /, received.slice(0, 300));
  assert.ok(sent < (24 << 20), `the gateway took ${sent} bytes of one request (${how})`);
  assert.ok(cpu < 1.0, `the gateway spent ${cpu.toFixed(2)} s of CPU on one request`);
  if (!sanitized(gw.proc.pid)) assert.ok(grewKb < 16 * 1024, `the gateway grew by ${grewKb} kB`);
  sock.destroy();
});

test('a cluster client publishing while Redis does not answer is held back by TCP at its pending bounds', async (t) => {
  const redis = await RedisServer.start();
  started.push(() => redis.stop());
  const gw = await startGateway(['--cluster', redis.url, '--network-threads', '1']);
  const { url } = await service(gw).getClientAccessToken({ userId: 'flooder', roles: ['webpubsub.sendToGroup', 'webpubsub.joinLeaveGroup'] });
  const ws = new WebSocket(url, 'json.webpubsub.azure.v1', { perMessageDeflate: false });  // 100 kB on the wire each
  const acks = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'ack') acks.push(m);
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  // One round trip through Redis first: the connection's cluster subscription is confirmed before Redis
  // stops (a sanitizer build took longer than that to set it up, and the client could not join then).
  ws.send(JSON.stringify({ type: 'joinGroup', group: 'lobby', ackId: 1e9 }));
  await waitFor(() => acks.some((a) => a.ackId === 1e9), { what: 'the joinGroup ack' });
  assert.equal(acks[0].success, true, JSON.stringify(acks[0]));
  acks.length = 0;
  // Redis stopped: every publish waits on it.
  redis.proc.kill('SIGSTOP');
  let continued = false;
  const cont = () => { if (!continued) { continued = true; redis.proc.kill('SIGCONT'); } };
  t.after(cont);
  await waitFor(() => fs.readFileSync(`/proc/${redis.proc.pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] === 'T', { what: 'redis-server to be stopped' });

  const rssBefore = rssKb(gw.proc.pid);
  const data = 'd'.repeat(100000);
  let sent = 0;
  const startedAt = Date.now();
  // Publishes of 100 kB, as fast as the socket takes them (the client's own buffer kept under 1 MB), for 4 s or 96 MB.
  while (Date.now() - startedAt < 4000 && sent < 960) {
    if (ws.bufferedAmount > (1 << 20)) {
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    ws.send(JSON.stringify({ type: 'sendToGroup', group: 'lobby', ackId: sent + 1, dataType: 'text', data }));
    ++sent;
  }
  await waitForCpuQuiet(gw.proc.pid, { what: 'the gateway to have read what it will read' });
  const grewKb = rssKb(gw.proc.pid) - rssBefore;
  t.diagnostic(`${sent} publishes of 100 kB taken from the client's buffer in 4 s; the gateway grew by ${grewKb} kB; ${acks.length} acks; ${gw.lines.filter((l) => l.level === 'warn').map((l) => l.msg).slice(0, 5).join(' | ')}`);
  // Before: every message read was queued for the cluster's executor, so the gateway held all of them.
  if (!sanitized(gw.proc.pid)) assert.ok(grewKb < 32 * 1024, `the gateway grew by ${grewKb} kB while Redis was stopped (${sent} publishes sent)`);
  cont();
  // Once Redis answers, every publish is done and acknowledged, in the end.
  await waitFor(() => acks.length === sent, { timeoutMs: 30000, what: `${sent} acks (have ${acks.length})` });
  assert.ok(acks.every((a) => a.success === true), JSON.stringify(acks.find((a) => a.success !== true)));
  ws.close();
});

// A client may send each of 4,096 requests with an ackId of its own; the gateway remembers that many per
// connection (to answer a repeat "Duplicate"). Before: 286 kB a connection in a hash set and a queue.
test('the ackIds a connection used are remembered in bounded, small memory', async (t) => {
  const gw = await startGateway();
  const { url } = await service(gw).getClientAccessToken({ roles: ['webpubsub.joinLeaveGroup'] });
  const socks = [];
  for (let i = 0; i < 40; ++i) {
    const ws = new WebSocket(url, 'json.webpubsub.azure.v1', { perMessageDeflate: false });
    ws.acks = 0;
    ws.on('message', (d) => { if (JSON.parse(d.toString()).type === 'ack') ws.acks++; });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    socks.push(ws);
  }
  // Leaving a group one is not in is acknowledged with success: each request costs only its ackId. Sent 128
  // at a time per connection, each batch acknowledged before the next: what the requests cost in passing
  // (their buffers, their acks queued) stays small and is reused from batch to batch, so the growth measured
  // is what the connections keep. (All 4,096 at once made the passing cost the gateway's high-water mark: up
  // to 617 kB a connection in a loaded CI run, retained by the allocator though freed.)
  const batch = 128;
  const sendBatch = async (first) => {
    for (const ws of socks)
      for (let a = first; a < first + batch; ++a) ws.send(JSON.stringify({ type: 'leaveGroup', group: 'g', ackId: a * 7919 }));
    await waitFor(() => socks.every((w) => w.acks === first + batch - 1), { timeoutMs: 30000, intervalMs: 5, what: `the acks up to ${first + batch - 1}` });
  };
  await sendBatch(1);  // the first batch before the baseline: the passing cost is in it
  await waitForCpuQuiet(gw.proc.pid);
  const before = rssKb(gw.proc.pid);
  for (let first = 1 + batch; first <= 4096; first += batch) await sendBatch(first);
  await waitForCpuQuiet(gw.proc.pid);
  const perConnectionKb = (rssKb(gw.proc.pid) - before) / socks.length;
  t.diagnostic(`${perConnectionKb.toFixed(0)} kB per connection after 4,096 ackIds each`);
  if (!sanitized(gw.proc.pid)) assert.ok(perConnectionKb < 100, `${perConnectionKb.toFixed(0)} kB per connection`);
  // A repeat is still recognised.
  const ws = socks[0];
  const reply = new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
  ws.send(JSON.stringify({ type: 'leaveGroup', group: 'g', ackId: 7919 * 4096 }));
  const ack = await reply;
  assert.equal(ack.success, false);
  assert.equal(ack.error?.name, 'Duplicate');
  for (const s of socks) s.close();
});
