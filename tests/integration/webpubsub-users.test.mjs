// One Azure Web PubSub user with thousands of connections (docs/webpubsub.md, "Users"; docs/limits.md): a send
// to the user reaches each connection once, closing them all is paced so that the network thread keeps serving
// its other connections meanwhile, and nothing of the user is left once they are closed, cycle after cycle.
// One network thread, so that the user's connections and the bystander share it; the bystander pings from a
// worker thread of its own, so that this process's handling of thousands of sockets does not delay it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { Gateway, WebSocket, metricValue, rssKb, sanitized, waitFor } from './harness.mjs';
import { WebPubSubServiceClient } from '@azure/web-pubsub';

const KEY = 'wsgw-users-access-key-0123456789abcdefghijklm';
const USER_CONNECTIONS = 3000;
const started = [];
after(async () => {
  for (const stop of started.reverse()) await stop().catch(() => {});
});

// This process holds USER_CONNECTIONS sockets: its soft descriptor limit goes up to its hard one.
function raiseOwnDescriptorLimit() {
  const hard = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--output=HARD', '--noheadings']).toString().trim();
  execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`]);
}

// A client of the echo route that pings every 2 ms from its own thread; take() returns the round trips
// (ms) since the last take().
async function startBystander(url) {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { WebSocket } = require(workerData.ws);
    const ws = new WebSocket(workerData.url);
    let trips = [], stopped = false;
    parentPort.on('message', (m) => {
      if (m === 'take') { parentPort.postMessage(trips); trips = []; }
      else { stopped = true; ws.terminate(); parentPort.close(); }
    });
    ws.once('open', async () => {
      parentPort.postMessage('open');
      while (!stopped) {
        const t = process.hrtime.bigint();
        ws.send('{"action":"ping"}');
        await new Promise((resolve) => ws.once('message', resolve));
        trips.push(Number(process.hrtime.bigint() - t) / 1e6);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    });`;
  const worker = new Worker(code, { eval: true, workerData: { url, ws: createRequire(import.meta.url).resolve('ws') } });
  await new Promise((resolve) => worker.once('message', resolve));
  return {
    take: () => new Promise((resolve) => { worker.once('message', resolve); worker.postMessage('take'); }),
    stop: () => worker.postMessage('stop'),
  };
}

async function openUserConnections(gw, token, count) {
  const conns = [];
  for (let i = 0; i < count; i += 250) {
    await Promise.all(Array.from({ length: Math.min(250, count - i) }, () => new Promise((resolve, reject) => {
      const c = { ws: new WebSocket(`${gw.url}/client/hubs/chat?access_token=${token}`, 'json.webpubsub.azure.v1'), messages: [], closed: false };
      c.ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.type === 'message') c.messages.push(m.data);
        else if (m.type === 'system' && m.event === 'connected') resolve();
      });
      c.ws.on('close', () => { c.closed = true; });
      c.ws.on('error', reject);
      conns.push(c);
    })));
  }
  return conns;
}

test('a user with 3,000 connections: one send each, a paced close that leaves the thread serving, nothing left after', async (t) => {
  raiseOwnDescriptorLimit();
  const gw = await Gateway.start({
    routes: () => ({
      routeSelectionExpression: '$request.body.action',
      webPubSub: { hubs: ['chat'], accessKeys: [KEY], recoveryWindowSeconds: 0 },
      limits: { maxConnectionsPerIp: 10 * USER_CONNECTIONS },
      routes: { $default: { handler: 'echo', routeResponse: true } },
    }),
    plugins: ['echo'],
    extraArgs: ['--access-log', 'off', '--network-threads', '1'],
  });
  started.push(() => gw.stop());
  const service = new WebPubSubServiceClient(`Endpoint=http://127.0.0.1:${gw.port};AccessKey=${KEY};Version=1.0;`, 'chat',
                                             { allowInsecureConnection: true });
  const bystander = await startBystander(gw.url);
  started.push(async () => bystander.stop());
  const { token } = await service.getClientAccessToken({ userId: 'crowd', expirationTimeInMinutes: 10 });
  const rssAfterClose = [];
  for (let cycle = 0; cycle < 3; cycle++) {
    const conns = await openUserConnections(gw, token, USER_CONNECTIONS);
    await service.sendToUser('crowd', 'rest', { contentType: 'text/plain' });
    assert.equal((await fetch(`${gw.managementUrl}/@users/crowd`, { method: 'POST', body: 'management' })).status, 200);
    await waitFor(() => conns.every((c) => c.messages.length >= 2), { what: 'both sends at every connection of the user' });
    assert.ok(conns.every((c) => c.messages.length === 2 && c.messages[0] === 'rest' && c.messages[1] === 'management'),
              'each connection of the user got each send once, in order');

    await bystander.take();
    const closeStarted = Date.now();
    await service.closeUserConnections('crowd');
    await waitFor(() => conns.every((c) => c.closed), { what: "the user's connections to close" });
    const closeMs = Date.now() - closeStarted;
    const trips = await bystander.take();
    const worst = Math.max(...trips);
    t.diagnostic(`cycle ${cycle}: ${USER_CONNECTIONS} closed in ${closeMs} ms; the bystander's ${trips.length} round trips meanwhile, worst ${worst.toFixed(1)} ms`);
    // Unpaced, the thread was the closes' alone for most of that time (a round trip of 1.3 s in 1.8 s, with
    // 6,000): now each turn of its loop begins 32 of them and serves its other connections in between.
    assert.ok(trips.length >= 5, `the bystander made ${trips.length} round trips in the ${closeMs} ms of the close`);
    assert.ok(worst < Math.max(closeMs / 3, 100), `a round trip of ${worst.toFixed(1)} ms during a close of ${closeMs} ms`);

    assert.equal(await service.userExists('crowd'), false);
    await waitFor(async () => (await metricValue(gw, 'wsgw_connections')) === 1, { what: 'only the bystander left' });
    rssAfterClose.push(rssKb(gw.proc.pid));
  }
  t.diagnostic(`RSS after each close: ${rssAfterClose.join(', ')} kB`);
  // A leak of what a user's 3,000 connections hold (about 15 MB) grows every cycle; malloc taking a new
  // arena for one thread grows one cycle, once (a CI run saw 10 MB between the first two of two cycles).
  const growth = [rssAfterClose[1] - rssAfterClose[0], rssAfterClose[2] - rssAfterClose[1]];
  if (!sanitized(gw.proc.pid)) assert.ok(Math.min(...growth) < 8192, `the gateway grew ${growth.join(' and ')} kB between cycles`);
  bystander.stop();
  await gw.stop();  // a clean exit: no sanitizer report
});
