// Shutdown bounds (issue 17): SIGTERM exits within --drain-seconds plus a few seconds, whatever the handlers
// and the connection table do.
// - The drain has one deadline: a $connect still running at SIGTERM does not make the stop wait
//   --drain-seconds twice (once in the network loop, once more for the handlers).
// - A handler stuck in plugin code while another process holds the table's write lock: the table's last
//   commit is given up after its 5 s, and the removals journalled, instead of waiting for the lock.
// - A plugin whose shutdown never returns: the stop is cut off (exit 1, an error line naming the stage) a
//   bounded time after the drain's deadline.
// Every wait is for a condition (a log line, a row count, the process's exit), never a fixed sleep.
// The three cases run at once, each with its own gateway, database and lock holder: what each measures is
// its own gateway's deadlines (timers, with seconds of margin), which the others' idle waits do not move, and
// together they take the longest one's 11 s rather than 24 s.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  Client, WebSocket, ctx, errorFrameRegex, journalledIds, probeRoutes, sqliteRows, waitFor, waitForEvent, withTimeout,
} from './harness.mjs';
import { gatewaysAndLocks, holdWriteLock } from './sqlite-write-lock.mjs';

const { lockHolders, start } = gatewaysAndLocks();

// Sends SIGTERM and resolves with the exit and the milliseconds it took; SIGKILL (and the exit says so)
// after `timeoutMs`.
async function sigterm(gw, timeoutMs) {
  const t0 = Date.now();
  gw.proc.kill('SIGTERM');
  let exit;
  try {
    exit = await withTimeout(gw.exited, timeoutMs, 'wsgw to exit after SIGTERM');
  } catch {
    gw.proc.kill('SIGKILL');
    await withTimeout(gw.exited, 5000, 'wsgw to exit after SIGKILL');
    exit = { hung: true };
  }
  const took = Date.now() - t0;
  // As Gateway.stop checks: the sanitizer build runs these tests too.
  assert.doesNotMatch(gw.stderr, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  return { exit, took };
}

// hog's "stuck" never returns (timed out after 100 ms and written off); "stuckslow" has AWS's 29 s timeout,
// so it is still running at SIGTERM. $default echoes through the sample echo handler.
function stuckRoutes(hogConfig = {}) {
  return (dir) => ({
    routeSelectionExpression: '$request.body.action',
    handlers: { hog: { config: { log: path.join(dir, 'hog.log'), ...hogConfig } } },
    routes: {
      stuck: { handler: 'hog', routeResponse: true, timeoutMs: 100 },
      stuckslow: { handler: 'hog', routeResponse: true },
      $default: { handler: 'echo', routeResponse: true },
    },
  });
}

const hogLines = (gw, word) => {
  const file = path.join(gw.dir, 'hog.log');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l === word).length : 0;
};

describe('SIGTERM ends the stop within its bounds', { concurrency: true }, () => {
  test('one deadline for the whole drain: a $connect still running at SIGTERM ends the stop at --drain-seconds, not twice that', async (t) => {
    const drainSeconds = 4;
    const gw = await start({ routes: probeRoutes(), plugins: ['probe'], extraArgs: ['--drain-seconds', String(drainSeconds)] });
    // The probe's $connect sleeps 20 s (under the route's 29 s timeout): still running when SIGTERM comes.
    const ws = new WebSocket(`${gw.url}/?sleep=20000`);
    ws.on('error', () => {});
    await waitForEvent(gw.eventsPath, (e) => ctx(e).eventType === 'CONNECT', { what: 'the $connect to be running' });
    const { exit, took } = await sigterm(gw, 20000);
    t.diagnostic(`exited ${took} ms after SIGTERM with --drain-seconds ${drainSeconds} (the old stop took about twice that)`);
    assert.deepEqual(exit, { code: 0, signal: null });
    // The $connect is waited for until the deadline, and not past it by more than a moment: the network loop's
    // wait and the handlers' wait share it (before: 4 s each, plus 1 s).
    assert.ok(took >= drainSeconds * 1000 - 500, `exited ${took} ms after SIGTERM: the running $connect was not waited for`);
    assert.ok(took < drainSeconds * 1000 + 2500, `exited ${took} ms after SIGTERM with --drain-seconds ${drainSeconds}`);
    assert.ok(gw.lines.some((l) => l.msg === 'stopped'));
  });

  test('a handler stuck in plugin code and the table locked by another process: the stop gives the table up after 5 s and journals the removals', async (t) => {
    const drainSeconds = 2;
    const gw = await start({ routes: stuckRoutes(), plugins: ['hog', 'echo'], workers: 2, extraArgs: ['--drain-seconds', String(drainSeconds)] });
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => Client.open(gw.url)));
    assert.equal(await c.request('{"action":"echo"}', 3000), '{"action":"echo"}');
    a.send('{"action":"stuck"}');
    assert.match(await a.nextText(3000), errorFrameRegex('Endpoint request timed out'));  // written off, still in hog.so
    b.send('{"action":"stuckslow"}');
    await waitFor(() => hogLines(gw, 'stuck') === 2, { what: 'both handlers to be inside hog.so' });
    // The rows are committed before the lock: removals of rows never written would cancel out, not fail.
    await waitFor(async () => (await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections')).length === 3,
      { timeoutMs: 5000, what: 'the 3 rows to be committed' });
    await holdWriteLock(gw.dbPath, lockHolders);  // held until after() releases it: far past the stop
    const { exit, took } = await sigterm(gw, 25000);
    t.diagnostic(`exited ${took} ms after SIGTERM with --drain-seconds ${drainSeconds} and the table locked`);
    assert.deepEqual(exit, { code: 0, signal: null }, 'the stop ended by itself, with status 0 (before: it waited for the lock)');
    // --drain-seconds, then the table's 5 s give-up, and a few seconds' margin for a busy machine.
    assert.ok(took < (drainSeconds + 5 + 4) * 1000, `exited ${took} ms after SIGTERM`);
    assert.ok(gw.lines.some((l) => /journalled/.test(l.msg ?? '') && l.connections === 3), 'the 3 removals are journalled');
    assert.equal(journalledIds(gw.dbPath).length, 3);
    assert.ok(gw.lines.some((l) => l.msg === 'stopped'));
  });

  test('a plugin whose shutdown never returns: the stop is cut off 10 s after the drain deadline, with exit 1 and the stage named', async (t) => {
    const drainSeconds = 1;
    const gw = await start({ routes: stuckRoutes({ hangOnShutdown: true }), plugins: ['hog', 'echo'],
      extraArgs: ['--drain-seconds', String(drainSeconds)] });
    const client = await Client.open(gw.url);
    assert.equal(await client.request('{"action":"echo"}', 3000), '{"action":"echo"}');
    const { exit, took } = await sigterm(gw, 30000);
    t.diagnostic(`exited ${took} ms after SIGTERM with --drain-seconds ${drainSeconds} and a shutdown that hangs`);
    assert.equal(hogLines(gw, 'shutdown'), 1, "hog's shutdown was called");
    assert.deepEqual(exit, { code: 1, signal: null }, 'cut off by the gateway itself (before: it hung until killed)');
    assert.ok(took < (drainSeconds + 10 + 4) * 1000, `exited ${took} ms after SIGTERM`);
    const cut = gw.errorLines().find((l) => /shutdown: still not finished/.test(l.msg ?? ''));
    assert.ok(cut, 'an error line says the stop was cut off');
    assert.equal(cut.stage, 'shutting the handlers down');
  });
});
