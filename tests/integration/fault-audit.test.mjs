// Fault audit: failures found by probing the release build as an unfriendly client and a careless operator
// would, each with the case that showed it.
// - SIGTERM right after SIGHUP: the reload handing its table to network threads whose loops had already
//   stopped waited 10 s for each of them before the process could exit.
// - Empty (and tiny) messages echoed to a client that never reads: a queued frame's own cost was not counted
//   against maxSendQueueBytes, so empty frames grew the gateway's memory without bound (500 MB in 20 s).
// - The database's filesystem full: an upgrade waiting for its row to be committed had no deadline, so every
//   client held a socket and a session until the disk had room again; and every upgrade meanwhile queued its
//   row, headers and all, in memory (62,000 upgrades in 30 s: 800 MB).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { Client, RawWebSocket, ctx, eventsOf, probeRoutes, readEvents, rssKb, sanitized, sqliteRows, waitFor, waitForPortClosed, withTimeout } from './harness.mjs';
import { gatewaysAndLocks, holdWriteLock } from './sqlite-write-lock.mjs';

const { lockHolders, start } = gatewaysAndLocks();

// A second SIGTERM (an orchestrator that repeats it) or Ctrl-C during the drain does not cut it short: the
// $disconnect queued behind a slow handler still runs, and the exit is 0. Before, the second signal took its
// default action once the network loop had ended: killed, no $disconnect, the row left behind.
test('a second SIGTERM or SIGINT during the drain does not cut it short', async () => {
  for (const second of ['SIGTERM', 'SIGINT']) {
    const gw = await start({ routes: probeRoutes(), plugins: ['probe'], extraArgs: ['--drain-seconds', '10'] });
    const c = await Client.open(gw.url);
    c.send(JSON.stringify({ action: 'sleep', ms: 1500 }));
    await waitFor(() => readEvents(gw.eventsPath).some((e) => ctx(e).eventType === 'MESSAGE'), { what: 'the slow message to run' });
    gw.proc.kill('SIGTERM');
    await withTimeout(c.closed, 5000, 'the client to be closed by the drain');
    // The second signal must come once the network loop has ended (the handler still sleeps): the management
    // listener lives on that loop and is closed right after it, so a refused connect is the evidence.
    await waitForPortClosed(Number(new URL(gw.managementUrl).port), { what: 'the network loop to end' });
    assert.ok(readEvents(gw.eventsPath).every((e) => ctx(e).eventType !== 'DISCONNECT'), 'the handler still sleeps: $disconnect waits behind it');
    gw.proc.kill(second);
    const exit = await withTimeout(gw.exited, 15000, `wsgw to exit after SIGTERM then ${second}`);
    assert.equal(exit.code, 0, `${second}: exit ${JSON.stringify(exit)}`);
    assert.equal(readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'DISCONNECT').length, 1, `${second}: the $disconnect ran`);
  }
});

test('SIGTERM right after SIGHUP exits at once, not after 10 s per network thread', async () => {
  // Four network threads: without the fix the exit took 4 x 10 s, waiting for loops that had stopped.
  const gw = await start({ routes: probeRoutes(), plugins: ['probe'], extraArgs: ['--network-threads', '4', '--drain-seconds', '2'] });
  gw.proc.kill('SIGHUP');
  gw.proc.kill('SIGTERM');
  const began = Date.now();
  const exit = await withTimeout(gw.exited, 15000, 'wsgw to exit after SIGHUP then SIGTERM').catch((err) => {
    gw.proc.kill('SIGKILL');
    throw err;
  });
  assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}; stderr: ${gw.stderr.slice(-2000)}`);
  // --drain-seconds 2 and nothing to drain: well under the 40 s the four waits took.
  assert.ok(Date.now() - began < 12000, `exited after ${Date.now() - began} ms`);
  assert.ok(gw.lines.some((l) => l.msg === 'stopped'), 'the "stopped" line');
});

// The probe sees $connect and $disconnect (and floods on "flood"); other messages go to the sample echo
// handler, two-way.
function echoRoutes(dir) {
  const table = probeRoutes({ routes: ['flood'] })(dir);
  table.handlers.echo = {};
  table.routes.$default = { handler: 'echo', routeResponse: true };
  // The kernel's send buffer capped too: left to autotune it grows to 0.8-4 MB towards the reader, which
  // then takes 0.4-2 million empty frames before the gateway's own queue holds any.
  table.limits = { maxSendQueueBytes: 65536, socketSendBufferBytes: 16384 };
  return table;
}

// A client that never reads (tests/integration/slow-reader.py: a 4 KiB receive buffer and a small MSS, so
// the kernel takes few echoes) sends `payloadBytes`-byte text messages, each echoed (or, given `message`,
// only that one), until the gateway closes it, the gateway's RSS has grown by 256 MB (no bound, in the
// release build), or `seconds` pass.
// Resolves with the $disconnect event (or undefined), how much the gateway's RSS grew, and the client's
// account of itself.
async function floodWithoutReading(gw, payloadBytes, seconds, message) {
  const script = new URL('./slow-reader.py', import.meta.url).pathname;
  const args = [script, String(gw.port), String(payloadBytes), String(seconds), ...(message === undefined ? [] : [message])];
  const reader = spawn('python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  reader.stdout.setEncoding('utf8').on('data', (c) => { out += c; });
  reader.stderr.setEncoding('utf8').on('data', (c) => { out += c; });
  const exited = new Promise((resolve) => reader.on('exit', resolve));
  try {
    await waitFor(() => out.includes('\n'), { timeoutMs: 10000, what: 'the slow reader\'s upgrade' });
    assert.match(out, /^HTTP\/1\.1 101 /, out);
    const id = await waitFor(() => gw.events().filter((e) => ctx(e).eventType === 'CONNECT').map((e) => ctx(e).connectionId).at(-1),
      { what: 'the flooding client\'s $connect' });
    const rss0 = rssKb(gw.proc.pid);
    const measuresRss = !sanitized(gw.proc.pid);
    const deadline = Date.now() + seconds * 1000;
    let disconnect;
    while (!disconnect && Date.now() < deadline) {
      disconnect = eventsOf(gw.eventsPath, id, 'DISCONNECT')[0];
      if (measuresRss && rssKb(gw.proc.pid) - rss0 > 256 * 1024) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const grownKb = rssKb(gw.proc.pid) - rss0;
    return { disconnect, grownKb, reader: out.trim() };
  } finally {
    reader.kill('SIGKILL');
    await exited;
  }
}

test('empty messages to a client that never reads (a handler pushes 200,000 at once): closed with 1008 as a slow consumer, memory bounded', async () => {
  const gw = await start({ routes: echoRoutes, plugins: ['probe', 'echo'] });
  // Without counting each frame's own cost every empty frame was queued (0 bytes against maxSendQueueBytes)
  // and the gateway grew by about 50 bytes per frame, never closing the client. The frames come from one
  // handler call, so how many there are does not depend on how fast the client's requests are echoed
  // (a flood of empty echo requests closed after 5 s or not within 120 s under ASan, CI's load deciding).
  const flood = JSON.stringify({ action: 'flood', count: 200000, size: 0 });
  const { disconnect, grownKb, reader } = await floodWithoutReading(gw, 0, 60, flood);
  assert.ok(disconnect, `the client was not closed (RSS grew by ${grownKb} kB; the client: ${reader})`);
  assert.equal(ctx(disconnect).disconnectStatusCode, 1008);
  assert.equal(ctx(disconnect).disconnectReason, 'Slow consumer: send queue over maxSendQueueBytes');
  // With the bound the growth is flat at about 25 MB (the burst's allocations on six threads; 22 MB after
  // 0.5 s, 24 MB after 7 s of flooding); without it, 57 MB after 20 s and climbing.
  if (!sanitized(gw.proc.pid)) assert.ok(grownKb < 48 * 1024, `RSS grew by ${grownKb} kB`);
  const probe = await Client.open(gw.url);
  assert.equal(await probe.request('still-served'), 'still-served');
  await probe.close();
  await gw.stop();
});

// Waits until /readyz says ready: the store has committed again after the lock went (its retry backs off
// up to 2 s), and until then new upgrades are refused with 503.
async function waitReady(gw) {
  await waitFor(async () => (await fetch(`${gw.managementUrl}/readyz`)).status === 200, { timeoutMs: 10000, what: '/readyz 200' });
}

test('a table that cannot be written: each upgrade gets 503 within handshakeTimeoutSeconds, and none runs $connect later', async () => {
  const gw = await start({
    routes: (dir) => ({ ...probeRoutes()(dir), limits: { handshakeTimeoutSeconds: 2 } }),
    plugins: ['probe'],
  });
  const lock = await holdWriteLock(gw.dbPath, lockHolders);
  // Without a deadline on the row's commit these waited (socket and session held) until the lock went.
  const answers = await Promise.all(Array.from({ length: 10 }, async () => {
    const raw = await RawWebSocket.open(gw.port, { timeoutMs: 8000 });
    raw.destroy();
    return raw.response.status;
  }));
  assert.deepEqual(answers, Array(10).fill(503));
  await lock.release();
  // The refused rows' inserts and removes are committed now: nothing is left, and no $connect ran for a
  // client that was told 503 (and so no $disconnect is owed).
  await waitReady(gw);
  await waitFor(async () => (await sqliteRows(gw.dbPath, 'SELECT count(*) AS n FROM connections'))[0].n === 0,
    { timeoutMs: 10000, what: 'an empty connection table' });
  const client = await Client.open(gw.url);
  assert.equal(await client.request('after'), 'after');
  const connects = gw.events().filter((e) => ctx(e).eventType === 'CONNECT');
  assert.equal(connects.length, 1, `only the last client's $connect ran: ${connects.map((e) => ctx(e).connectionId)}`);
  await client.close();
  await gw.stop();
});

// Sends an upgrade request with `padBytes` of headers on a new socket; resolves with the status line's code
// (or null when the socket closed without one).
function upgradeStatus(port, padBytes, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    sock.on('connect', () => sock.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Pad: ${'p'.repeat(padBytes)}\r\n\r\n`));
    sock.setEncoding('latin1');
    sock.on('data', (c) => {
      got += c;
      if (got.includes('\r\n')) sock.destroy();
    });
    sock.on('error', () => {});
    sock.on('close', () => resolve(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? null));
    sock.setTimeout(timeoutMs, () => { got = `no answer within ${timeoutMs} ms`; sock.destroy(); });
  });
}

test('while the table cannot be written, upgrades are refused at once and queue nothing: memory stays flat', async () => {
  const gw = await start({
    routes: (dir) => ({ ...probeRoutes()(dir), limits: { handshakeTimeoutSeconds: 30 } }),
    plugins: ['probe'],
  });
  const lock = await holdWriteLock(gw.dbPath, lockHolders);
  // The first upgrade meets the lock (its commit fails and is retried): the store is known to be failing.
  const first = upgradeStatus(gw.port, 10, 60000);  // it waits for its row until the lock goes
  await waitFor(async () => {
    const text = await (await fetch(`${gw.managementUrl}/readyz`)).text();
    return text.includes('cannot be written');
  }, { timeoutMs: 10000, what: '/readyz to report the failing table' });
  const rss0 = rssKb(gw.proc.pid);
  // 4,000 upgrades with 4 KB of headers, 100 at a time. Each used to queue its row (with its headers) for
  // the commit being retried, and wait out handshakeTimeoutSeconds: 60 MB and more held until the lock went.
  const statuses = [];
  for (let i = 0; i < 40 && statuses.every((s) => s === '503'); i++) {
    statuses.push(...await Promise.all(Array.from({ length: 100 }, () => upgradeStatus(gw.port, 4000))));
  }
  const grownKb = rssKb(gw.proc.pid) - rss0;
  assert.deepEqual([...new Set(statuses)], ['503'], 'every upgrade is answered 503 at once');
  if (!sanitized(gw.proc.pid)) assert.ok(grownKb < 24 * 1024, `RSS grew by ${grownKb} kB`);
  await lock.release();
  // The first one waited for its row: committed once the lock went (101, its $connect ran), or refused.
  const firstStatus = await first;
  assert.ok(['101', '503'].includes(firstStatus), `the first upgrade: ${firstStatus}`);
  await waitReady(gw);
  await waitFor(async () => (await sqliteRows(gw.dbPath, 'SELECT count(*) AS n FROM connections'))[0].n === 0,
    { timeoutMs: 10000, what: 'an empty connection table' });
  const connects = gw.events().filter((e) => ctx(e).eventType === 'CONNECT').length;
  assert.equal(connects, firstStatus === '101' ? 1 : 0, 'no $connect ran for a refused upgrade');
  const client = await Client.open(gw.url);
  assert.equal(await client.request('after'), 'after');
  await client.close();
  await gw.stop();
});
