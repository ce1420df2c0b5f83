// Fault audit: failures found by probing the release build as an unfriendly client and a careless operator
// would, each with the case that showed it.
// - SIGTERM right after SIGHUP: the reload handing its table to network threads whose loops had already
//   stopped waited 10 s for each of them before the process could exit.
// - Empty (and tiny) messages echoed to a client that never reads: a queued frame's own cost was not counted
//   against maxSendQueueBytes, so empty frames grew the gateway's memory without bound (500 MB in 20 s).
// - The database's filesystem full: an upgrade waiting for its row to be committed had no deadline, so every
//   client held a socket and a session until the disk had room again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, probeRoutes, waitFor, withTimeout } from './harness.mjs';

const started = [];
after(async () => {
  for (const gw of started) if (gw.alive()) await gw.stop({ signal: 'SIGKILL' });
});

async function start(options) {
  const gw = await Gateway.start(options);
  started.push(gw);
  return gw;
}

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
