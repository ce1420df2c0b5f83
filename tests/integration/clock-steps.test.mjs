// Steps of the wall clock (`date -s`, an NTP correction, a VM resumed from a snapshot): throttles, idle
// timeouts and lifetimes are measured on the monotonic clock, so a step neither stalls a throttle (a step
// back used to refill no token until the clock had caught up again: every message got "Too Many Requests"
// for as long as the step) nor keeps an idle connection open for the length of a step back, nor closes a
// connection early after a step forward. Timestamps (connectedAt, lastActiveAt, log times) follow the wall
// clock, as they should.
//
// The gateway runs with tests/integration/preload/clock_shift.cpp preloaded: its wall clock alone steps when
// a test writes an offset to a file; the monotonic clocks and the rest of the machine are untouched.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Gateway, errorFrameRegex, probeRoutes, sleep, whoami } from './harness.mjs';

const SHIFT_LIB = path.join(process.env.WSGW_TEST_PLUGINS_DIR ?? '', 'clock_shift.so');
const tooMany = errorFrameRegex('Too Many Requests');

// A gateway whose wall clock the test can step: step(seconds) sets the offset from the true time.
async function startWithClock({ routes, extraArgs = [] }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-clock-'));
  const shiftFile = path.join(dir, 'clock-shift');
  fs.writeFileSync(shiftFile, Buffer.alloc(8));
  // The sanitizer runtimes want to come first in the process; the preloaded library is not instrumented.
  const asan = [process.env.ASAN_OPTIONS, 'verify_asan_link_order=0'].filter(Boolean).join(':');
  const gw = await Gateway.start({
    routes, plugins: ['probe'], extraArgs,
    wrapper: ['env', `LD_PRELOAD=${SHIFT_LIB}`, `WSGW_CLOCK_SHIFT_FILE=${shiftFile}`, `ASAN_OPTIONS=${asan}`],
  });
  gw.stepClock = (seconds) => {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(Math.round(seconds * 1e9)));
    const fd = fs.openSync(shiftFile, 'r+');
    fs.writeSync(fd, b, 0, 8, 0);
    fs.closeSync(fd);
  };
  return gw;
}

const routesWith = (extra) => (dir) => ({ ...probeRoutes()(dir), ...extra });

describe('wall clock steps', () => {
  test('the step is real: a day ahead, the gateway\'s access log says tomorrow', async () => {
    // Without this the other tests could pass with a preload that does nothing.
    const gw = await startWithClock({ routes: routesWith({}) });
    try {
      const c = await Client.open(gw.url);
      gw.stepClock(86400);
      assert.equal(await c.request('after the step'), 'after the step');
      const line = await gw.waitForLog((l) => l.msg === 'access' && l.eventType === 'MESSAGE', 5000, 'the access line');
      const ahead = Date.parse(line.time) - Date.now();
      assert.ok(ahead > 86000e3 && ahead < 86500e3, `the access line's time is ${ahead} ms ahead`);
      await c.close();
    } finally {
      await gw.stop();
    }
  });

  test('a step forward of a day while $connect runs does not cut the new connection\'s lifetime', async () => {
    // connectedAt is written before $connect, the lifetime is set once it is admitted: a day's step between
    // the two made its lifetime over at once (1001 as soon as it opened). A CI run hit this by chance in the
    // test above (the step came between the 101 and libwebsockets' ESTABLISHED).
    const gw = await startWithClock({ routes: routesWith({ limits: { maxConnectionSeconds: 1800 } }) });
    try {
      const opening = Client.open(`${gw.url}/?sleep=500`);  // the probe's $connect sleeps 500 ms
      await sleep(200);
      gw.stepClock(86400);
      const c = await opening;
      assert.equal(await c.request('after the step'), 'after the step');
      await sleep(300);
      assert.equal(await c.request('still open'), 'still open');
      await c.close();
    } finally {
      await gw.stop();
    }
  });

  test('a step back does not stall the API\'s, a route\'s or a connection\'s throttle', async () => {
    const gw = await startWithClock({
      routes: (dir) => {
        const t = probeRoutes({ routes: ['chat'] })(dir);
        // Two a second: the burst and the one over it are sent well within the half second a token takes to
        // come back, however slow the machine (ten a second left 100 ms for eleven round trips).
        t.throttle = { rate: 2, burst: 2 };
        t.routes.chat.throttle = { rate: 2, burst: 2 };
        t.routes.chat.connectionThrottle = { rate: 2, burst: 2 };
        return t;
      },
    });
    try {
      const c = await Client.open(gw.url);
      const msg = (i) => JSON.stringify({ action: 'chat', i });
      for (let i = 0; i < 2; i++) assert.equal(await c.request(msg(i)), msg(i), `message ${i} within the burst`);
      assert.match(await c.request(msg(2)), tooMany, 'the third at once is over the burst');
      gw.stepClock(-300);
      await sleep(1200);  // the time the buckets need to refill (2 a second): the thing under test, not a wait for a state
      for (let i = 3; i < 5; i++) assert.equal(await c.request(msg(i)), msg(i), `message ${i}, 1.2 s after a step back of 5 minutes`);
      await c.close();
    } finally {
      await gw.stop();
    }
  });

  test('a step back does not stall the management API\'s rate limit', async () => {
    const gw = await startWithClock({ routes: routesWith({}), extraArgs: ['--management-rate', '2'] });
    try {
      const c = await Client.open(gw.url);
      const id = await whoami(c);
      const get = async () => (await fetch(`${gw.managementUrl}/@connections/${id}`)).status;
      for (let i = 0; i < 2; i++) assert.equal(await get(), 200, `request ${i} within the burst`);
      assert.equal(await get(), 429, 'the third at once is over the rate');
      gw.stepClock(-300);
      await sleep(1200);  // the refill time, as above
      for (let i = 0; i < 2; i++) assert.equal(await get(), 200, `request ${i}, 1.2 s after a step back of 5 minutes`);
      await c.close();
    } finally {
      await gw.stop();
    }
  });

  test('after a step back of an hour an idle connection still closes at its idle timeout', async () => {
    const gw = await startWithClock({ routes: routesWith({ limits: { idleTimeoutSeconds: 2 } }) });
    try {
      const c = await Client.open(gw.url);
      const opened = Date.now();
      gw.stepClock(-3600);
      const closed = await c.waitClosed(6000);
      assert.equal(closed.code, 1001);
      const after = Date.now() - opened;
      assert.ok(after >= 1800 && after < 4500, `closed ${after} ms after it opened`);
    } finally {
      await gw.stop();
    }
  });

  test('after a step forward of an hour a connection is closed neither early as idle nor at a lifetime cut short', async () => {
    const gw = await startWithClock({ routes: routesWith({ limits: { idleTimeoutSeconds: 3, maxConnectionSeconds: 1800 } }) });
    try {
      const c = await Client.open(gw.url);
      const opened = Date.now();
      await sleep(1500);  // pacing: the message comes halfway through the idle timeout
      assert.equal(await c.request('halfway'), 'halfway');
      gw.stepClock(3600);
      // Its first timer fires 3 s after it opened; it has been idle for 1.5 s then, and its lifetime has 30 minutes left.
      const closed = await c.waitClosed(8000);
      const after = Date.now() - opened;
      assert.equal(closed.code, 1001);
      assert.ok(after >= 4200, `closed ${after} ms after it opened: 3 s of idleness after its message at 1.5 s is 4.5 s`);
    } finally {
      await gw.stop();
    }
  });
});
