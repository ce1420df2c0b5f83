// Limits and throttles of routes.json, through the real listener: frame size (1009), idle timeout and
// connection lifetime (1001), connections per source address (429), allowed Origins (403), the handshake
// timeout, and token buckets per API, per route and per connection (AWS's "Too Many Requests" frame, the
// message not processed).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { Client, Gateway, errorFrameRegex, eventsOf, metricValue, openExpectingRefusal, openSilentSockets, probeRoutes, sleep, waitFor, whoami, withTimeout } from './harness.mjs';

const tooMany = errorFrameRegex('Too Many Requests');

describe('frame size, idle timeout, lifetime, per-address connections, origins, handshake timeout', () => {
  let gw;
  before(async () => {
    gw = await Gateway.start({
      routes: (dir) => ({
        ...probeRoutes({ routes: ['whoami'] })(dir),
        limits: { maxFrameBytes: 32768, idleTimeoutSeconds: 1, maxConnectionSeconds: 3, maxConnectionsPerIp: 3,
                  allowedOrigins: ['https://app.example.com'], handshakeTimeoutSeconds: 1 },
      }),
      plugins: ['probe'],
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test('a frame over maxFrameBytes closes with 1009; the same bytes in smaller frames are one message', async () => {
    // Uncompressed, so that the frame is 40000 bytes on the wire (compression.test.mjs: compressed frames).
    const big = await Client.open(gw.url, { perMessageDeflate: false });
    big.send('a'.repeat(40000));
    assert.equal((await big.waitClosed()).code, 1009);
    const fragmented = await Client.open(gw.url);
    const part = 'b'.repeat(25000);
    for (let i = 0; i < 4; i++) fragmented.ws.send(part, { fin: i === 3 });
    const echoed = await fragmented.nextText();
    assert.equal(echoed.length, 100000, 'a 100 KB message in 25 KB frames is within both limits');
    await fragmented.close();
  });

  test('a connection with no traffic for idleTimeoutSeconds closes with 1001; traffic keeps it open', async () => {
    const quiet = await Client.open(gw.url);
    const busy = await Client.open(gw.url);
    const started = Date.now();
    const keepAlive = (async () => {
      for (let i = 0; i < 4; i++) {
        await sleep(400);  // pacing: traffic every 400 ms, less than the 1 s idle timeout (not a wait for a state)
        assert.equal(await busy.request(`ping-${i}`), `ping-${i}`);
      }
    })();
    const closed = await quiet.waitClosed(4000);
    assert.equal(closed.code, 1001);
    const after = Date.now() - started;
    assert.ok(after >= 900 && after < 2500, `closed after ${after} ms`);
    await keepAlive;
    assert.equal(busy.closeInfo, null, 'the busy connection outlived the idle timeout');
    await busy.close();
  });

  test('a connection older than maxConnectionSeconds closes with 1001 even while busy', async () => {
    const c = await Client.open(gw.url);
    const id = await whoami(c);
    const started = Date.now();
    for (let i = 0; i < 20 && !c.closeInfo; i++) {
      await sleep(250);  // pacing: keeps the connection busy until the lifetime ends it (not a wait for a state)
      if (!c.closeInfo) c.send(`keep-${i}`);
    }
    const closed = await c.waitClosed(2000);
    assert.equal(closed.code, 1001);
    assert.ok(Date.now() - started < 4500);
    await waitFor(() => eventsOf(gw.eventsPath, id, 'DISCONNECT').length === 1, { what: 'its $disconnect' });
    assert.equal(eventsOf(gw.eventsPath, id, 'DISCONNECT')[0].requestContext.disconnectStatusCode, 1001);
  });

  test('more than maxConnectionsPerIp connections from one address get 429; a closed one frees its place', async () => {
    const open = await Promise.all([1, 2, 3].map(() => Client.open(gw.url)));
    const refused = await openExpectingRefusal(gw.url);
    assert.equal(refused.status, 429);
    assert.match(JSON.parse(refused.body).message, /127\.0\.0\.1 already has 3 connections/);
    await open[0].close();
    // The gateway frees the place when it has processed the close, which the client cannot see: retry until it has.
    const again = await waitFor(() => Client.open(gw.url).catch(() => null), { what: 'a fourth connection after one closed' });
    await Promise.all([again, open[1], open[2]].map((c) => c.close()));
  });

  test('sockets that never send a request count against maxConnectionsPerIp: beyond it a new one is closed at once, other addresses still connect', async () => {
    const before = await metricValue(gw, 'wsgw_pending_per_ip_refusals_total');
    // Six from one address, limit 3: three are closed at accept, before anything is read, long before the
    // 1 s handshake timeout ends the other three. (Which three depends on which network thread accepts first.)
    const silent = await openSilentSockets(gw.port, 6);
    await waitFor(() => silent.filter((s) => s.closedAfterMs !== null).length >= 3, { what: 'three of the six closed' });
    // Closed at accept: well before the 1 s handshake timeout, which (on a slow host, by the time this looks)
    // may have ended the other three as well.
    const closedEarly = silent.filter((s) => s.closedAfterMs !== null && s.closedAfterMs < 800);
    assert.equal(closedEarly.length, 3, `exactly three closed at once: ${JSON.stringify(silent.map((s) => s.closedAfterMs))}`);
    assert.equal(await metricValue(gw, 'wsgw_pending_per_ip_refusals_total'), before + 3);
    // Another address is not affected: its WebSocket connects.
    const other = await Client.open(gw.url, { localAddress: '127.0.0.2' });
    assert.ok(await whoami(other));
    await other.close();
    for (const s of silent) s.sock.destroy();
    // Their places come back when the gateway has seen them go.
    const again = await waitFor(() => Client.open(gw.url).catch(() => null), { what: 'a connection after the silent sockets left' });
    await again.close();
  });

  test('an Origin not in allowedOrigins gets 403; the allowed one and a client without Origin connect', async () => {
    const refused = await openExpectingRefusal(gw.url, { origin: 'https://evil.example.net' });
    assert.equal(refused.status, 403);
    assert.match(JSON.parse(refused.body).message, /Origin https:\/\/evil\.example\.net is not allowed/);
    const allowed = await Client.open(gw.url, { origin: 'https://app.example.com' });
    const noOrigin = await Client.open(gw.url);
    await allowed.close();
    await noOrigin.close();
  });

  test('a handshake not finished within handshakeTimeoutSeconds is dropped', async () => {
    const sock = net.connect({ host: '127.0.0.1', port: gw.port });
    await new Promise((resolve) => sock.once('connect', resolve));
    sock.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'); // and never the rest
    const started = Date.now();
    await withTimeout(new Promise((resolve) => sock.once('close', resolve)), 4000, 'the gateway to drop the stalled handshake');
    assert.ok(Date.now() - started >= 800);
    sock.destroy();
  });
});

describe('throttles: per API, per route, per connection', () => {
  let gw;
  before(async () => {
    gw = await Gateway.start({
      routes: (dir) => {
        const table = probeRoutes({ routes: ['limited', 'shared', 'whoami'] })(dir);
        table.routes.limited.connectionThrottle = { rate: 0.5, burst: 2 };
        table.routes.shared.throttle = { rate: 0.5, burst: 3 };
        table.throttle = { rate: 1000, burst: 1000 };
        return table;
      },
      plugins: ['probe'],
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test('connectionThrottle: over the burst the client gets AWS\'s Too Many Requests and the message is not processed; other connections have their own bucket', async () => {
    const a = await Client.open(gw.url);
    const b = await Client.open(gw.url);
    const aid = await whoami(a);
    for (let i = 0; i < 5; i++) a.send(JSON.stringify({ action: 'limited', n: i }));
    // The refusals are answered at once by the network thread, so they may overtake the echoes.
    const replies = await a.collectTexts(5);
    assert.deepEqual(replies.filter((r) => !tooMany.test(r)), ['{"action":"limited","n":0}', '{"action":"limited","n":1}']);
    const refusals = replies.filter((r) => tooMany.test(r));
    assert.equal(refusals.length, 3);
    const requestIds = refusals.map((r) => tooMany.exec(r)[2]);
    assert.equal(new Set(requestIds).size, 3, 'one frame, with its own requestId, per rejected message');
    // All 5 are answered: the 2 echoes were logged by the probe before it answered, and the 3 refusals were
    // decided on the network thread, so the log holds everything the handler will ever see of them.
    const handled = eventsOf(gw.eventsPath, aid, 'MESSAGE').filter((e) => e.body.includes('"limited"'));
    assert.equal(handled.length, 2, 'the throttled messages never reached the handler');
    assert.equal(await b.request('{"action":"limited","n":9}'), '{"action":"limited","n":9}');
    await a.close();
    await b.close();
  });

  test('a route throttle is shared by every connection', async () => {
    const clients = await Promise.all([1, 2].map(() => Client.open(gw.url)));
    for (const c of clients) for (let i = 0; i < 3; i++) c.send(JSON.stringify({ action: 'shared', i }));
    const all = (await Promise.all(clients.map((c) => c.collectTexts(3)))).flat();
    assert.equal(all.filter((r) => tooMany.test(r)).length, 3, `3 of 6 throttled: ${JSON.stringify(all)}`);
    const metrics = await (await fetch(`${gw.managementUrl}/metrics`)).text();
    assert.match(metrics, /wsgw_client_error_total\{route="shared"\} 3\n/);
    assert.match(metrics, /wsgw_client_error_total\{route="limited"\} 3\n/);
    await Promise.all(clients.map((c) => c.close()));
  });

  test('the API-wide throttle applies to every route', async () => {
    const g = await Gateway.start({ routes: (dir) => ({ ...probeRoutes()(dir), throttle: { rate: 0.5, burst: 2 } }), plugins: ['probe'] });
    try {
      const c = await Client.open(g.url);
      for (let i = 0; i < 4; i++) c.send(`m${i}`);
      const r = await c.collectTexts(4);
      assert.deepEqual(r.filter((t) => !tooMany.test(t)), ['m0', 'm1']);
      assert.equal(r.filter((t) => tooMany.test(t)).length, 2);
      await c.close();
    } finally {
      await g.stop();
    }
  });
});


test('socketSendBufferBytes sets the kernel send buffer of each client socket (what a client that stops reading can make it hold)', async () => {
  const g = await Gateway.start({ routes: (dir) => ({ ...probeRoutes()(dir), limits: { socketSendBufferBytes: 16384 } }), plugins: ['probe'] });
  try {
    const c = await Client.open(g.url);
    assert.equal(await c.request('hello'), 'hello');
    // ss -m: skmem's tb is the socket's send buffer, which Linux sets to twice what SO_SNDBUF asks.
    const line = execFileSync('ss', ['-tmnH', 'state', 'established', `( sport = :${g.port} )`], { encoding: 'utf8' });
    const tb = /\btb(\d+)/.exec(line);
    assert.ok(tb, `ss printed no send buffer for the gateway's socket: ${line}`);
    assert.equal(Number(tb[1]), 2 * 16384, line);
    await c.close();
  } finally {
    await g.stop();
  }
});
