// Route timeouts (timeoutMs, AWS's 29 s by default): the client gets AWS's "Endpoint request timed out"
// frame at the deadline, the late result is dropped, the connection's next messages do not wait for the
// stuck handler, a pool whose every worker is stuck still serves, and a $connect past its timeout is 504.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Client, Gateway, errorFrameRegex, openExpectingRefusal, probeRoutes, sqliteRows, waitFor } from './harness.mjs';

let gw;

before(async () => {
  const routes = (dir) => {
    const table = probeRoutes({ routes: ['sleep'] })(dir);
    table.routes.sleep.timeoutMs = 300;
    table.routes.$connect.timeoutMs = 300;
    return table;
  };
  gw = await Gateway.start({ routes, plugins: ['probe'], workers: 2 });
});

after(async () => {
  await gw?.stop();
});

const sleepFor = (ms) => JSON.stringify({ action: 'sleep', ms });

test('a handler sleeping past timeoutMs: the timeout frame comes at the deadline, the next message is not held up, the late result never arrives', async () => {
  const c = await Client.open(gw.url);
  const started = Date.now();
  c.send(sleepFor(1500));
  const frame = await c.nextText(3000);
  const elapsed = Date.now() - started;
  const m = errorFrameRegex('Endpoint request timed out').exec(frame);
  assert.ok(m, `AWS's timeout frame, got ${frame}`);
  assert.ok(elapsed >= 290 && elapsed < 1200, `answered at the 300 ms deadline (took ${elapsed} ms)`);
  // The stuck handler still sleeps; this connection's next message goes to another worker at once.
  const t0 = Date.now();
  assert.equal(await c.request('next-message', 3000), 'next-message');
  assert.ok(Date.now() - t0 < 800, `the next message did not wait for the stuck handler (${Date.now() - t0} ms)`);
  await c.expectSilence(1600); // the 1500 ms handler returns meanwhile: its "slept" is dropped
  assert.equal(c.closeInfo, null);
  await c.close();
});

test('with every worker stuck past its timeout, new workers take their place and the gateway keeps serving', async () => {
  const stuck = await Promise.all([1, 2, 3].map(() => Client.open(gw.url)));
  for (const c of stuck) c.send(sleepFor(2500));
  for (const c of stuck) assert.match(await c.nextText(3000), errorFrameRegex('Endpoint request timed out'));
  const fresh = await Client.open(gw.url);
  const t0 = Date.now();
  assert.equal(await fresh.request('served', 3000), 'served');
  assert.ok(Date.now() - t0 < 1000, `served while 3 handlers still sleep (${Date.now() - t0} ms)`);
  await Promise.all([...stuck, fresh].map((c) => c.close()));
});

test('a $connect past its timeout is refused with 504 and leaves no row', async () => {
  const refused = await openExpectingRefusal(`${gw.url}/?sleep=1500`, {}, 5000);
  assert.equal(refused.status, 504);
  const c = await Client.open(gw.url);
  assert.equal(await c.request('after-504'), 'after-504');
  const id = await c.request('{"action":"whoami"}');
  await waitFor(async () => {
    const rows = await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections');
    return rows.length === 1 && rows[0].connection_id === id;
  }, { what: 'only the open connection in the table' });
  await c.close();
});

// An idle gateway does not tick: its timeout watchdog sleeps while no handler runs (it woke every 5 ms,
// ~200 context switches a second for nothing), and the first invocation after the quiet spell wakes it, so
// that invocation's timeout still comes at its deadline.
test('an idle gateway sleeps (few context switches), and a timeout after the quiet spell still comes at its deadline', async () => {
  const g = await Gateway.start({ routes: (dir) => { const t = probeRoutes({ routes: ['sleep'] })(dir); t.routes.sleep.timeoutMs = 300; return t; }, plugins: ['probe'] });
  try {
    const c = await Client.open(g.url);
    assert.equal(await c.request('warm'), 'warm');
    const switches = () => fs.readdirSync(`/proc/${g.proc.pid}/task`).reduce((sum, t) => {
      try {
        return sum + Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(fs.readFileSync(`/proc/${g.proc.pid}/task/${t}/status`, 'utf8'))[1]);
      } catch { return sum; }  // a thread that ended meanwhile
    }, 0);
    await new Promise((r) => setTimeout(r, 1500));  // the quiet spell begins
    const before = switches();
    await new Promise((r) => setTimeout(r, 2000));
    const idleSwitches = switches() - before;
    assert.ok(idleSwitches < 100, `${idleSwitches} voluntary context switches in 2 s of idleness`);
    const started = Date.now();
    c.send(sleepFor(3000));
    const frame = await c.nextText(5000);
    assert.ok(errorFrameRegex('Endpoint request timed out').exec(frame), frame);
    assert.ok(Date.now() - started < 2000, `the timeout came at its deadline, not when the handler returned (${Date.now() - started} ms)`);
    await c.close();
  } finally {
    await g.stop();
  }
});

// The network thread wakes one worker per 8 lanes it made ready in a turn (a worker drains lane after lane),
// which keeps fast handlers' context switches down. A slow in-process handler must not hold the other lanes
// of that turn while idle workers sleep: four 1-second handlers on four connections, read in one turn of
// one network thread (the gateway is stopped while they arrive), run side by side on four workers (all answered in about 1 s; held behind one
// another they took 2 to 4 s, and a cluster test once waited over 10 s for the fourth to start).
test('slow handlers read in one turn run side by side on idle workers, not one after another', async () => {
  const wide = await Gateway.start({ routes: probeRoutes({ routes: ['sleep'] }), plugins: ['probe'], workers: 4,
    extraArgs: ['--network-threads', '1', '--access-log', 'off'] });
  try {
    const clients = await Promise.all([1, 2, 3, 4].map(() => Client.open(wide.url)));
    // Stopped while the four messages arrive, so that the network thread reads them all in its next turn.
    wide.proc.kill('SIGSTOP');
    for (const c of clients) c.send(sleepFor(1000));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    wide.proc.kill('SIGCONT');
    const answers = await Promise.all(clients.map((c) => c.nextText(8000)));
    const elapsed = Date.now() - t0;
    assert.deepEqual(answers, ['slept', 'slept', 'slept', 'slept']);
    assert.ok(elapsed < 1800, `four 1 s handlers answered within 1.8 s, side by side (took ${elapsed} ms)`);
    await Promise.all(clients.map((c) => c.close()));
  } finally {
    await wide.stop();
  }
});
