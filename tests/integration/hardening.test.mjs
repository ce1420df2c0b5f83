// Hardening (issues 17 and 18): what a misbehaving handler or a busy API cannot do to the gateway.
// - Written-off in-process threads are capped (16): past the cap a stuck route is answered at once with
//   the timeout frame instead of being called (the same handler on other routes runs on), a $disconnect of
//   a stuck route waits for a stuck thread to return instead of being dropped, and a thread that cannot be
//   created (RLIMIT_NPROC) is logged and survived, never an abort: in the pool, and in a reload or a start
//   that needs supervisor threads for isolated workers or function processes (refused with a clear error).
// - SIGTERM exits within --drain-seconds plus a few seconds whatever handlers do, without unloading a
//   plugin under a thread that still runs its code.
// - maxWorkerMemoryMb holds during the invocation (RLIMIT_DATA in the worker), and the worker is replaced.
// - Empty messages: a handler's non-NULL empty body is an empty message, a NULL body sends nothing.
// - The API-wide token bucket is exact across two network threads.
// - event_json never reads a wsgw_event the gateway did not make; a proxy-only routes.json needs no routes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { Client, Gateway, ctx, defaultRoutes, prepareDir, errorFrameRegex, eventsOf, probeRoutes, sqliteRows, waitFor, waitForEvent, whoami, withTimeout } from './harness.mjs';

const started = [];
after(async () => {
  for (const gw of started) if (gw.alive()) await gw.stop({ signal: 'SIGKILL' });
});

async function start(options) {
  const gw = await Gateway.start(options);
  started.push(gw);
  return gw;
}

const threadCount = (pid) => fs.readdirSync(`/proc/${pid}/task`).length;
const timeoutFrame = errorFrameRegex('Endpoint request timed out');
const internalError = errorFrameRegex('Internal server error');

// hog's "stuck" never returns; $default echoes through the sample echo handler (another instance).
function stuckRoutes({ timeoutMs = 100, isolation } = {}) {
  return (dir) => ({
    routeSelectionExpression: '$request.body.action',
    handlers: { hog: { config: { log: path.join(dir, 'hog.log') }, ...(isolation ? { isolation } : {}) } },
    routes: {
      stuck: { handler: 'hog', routeResponse: true, timeoutMs },
      stuckslow: { handler: 'hog', routeResponse: true },  // AWS's 29 s: not timed out when SIGTERM comes
      eventjson: { handler: 'hog', routeResponse: true },
      $default: { handler: 'echo', routeResponse: true },
    },
  });
}

test('written-off threads are capped: past 16 a stuck route is answered at once and the thread count stays bounded', async (t) => {
  const gw = await start({ routes: stuckRoutes(), plugins: ['hog', 'echo'], workers: 2, extraArgs: ['--access-log', 'off'] });
  const clients = await Promise.all([0, 1, 2, 3].map(() => Client.open(gw.url)));
  // The baseline once the gateway serves: some of its threads start just after the "listening" line.
  assert.equal(await clients[0].request('{"action":"echo-me"}'), '{"action":"echo-me"}');
  const baseline = threadCount(gw.proc.pid);
  const perClient = 10;
  for (const c of clients) for (let i = 0; i < perClient; ++i) c.send('{"action":"stuck"}');
  let peak = 0;
  const answers = await Promise.all(clients.map(async (c) => {
    const got = [];
    for (let i = 0; i < perClient; ++i) {
      got.push(await c.nextText(10000));
      peak = Math.max(peak, threadCount(gw.proc.pid));
    }
    return got;
  }));
  for (const text of answers.flat()) assert.match(text, timeoutFrame);
  peak = Math.max(peak, threadCount(gw.proc.pid));
  // 16 written off, plus at most one per worker already running when the cap was reached.
  t.diagnostic(`threads: ${baseline} at start, ${peak} at the peak after 40 stuck invocations`);
  assert.ok(peak <= baseline + 16 + 2, `threads ${baseline} at start, ${peak} at the peak after 40 stuck invocations`);
  await gw.waitForLog((l) => /handler not called/.test(l.msg ?? ''), 3000, 'the fail-fast warning');
  // Past the cap the stuck route's handler is not called (hog logs each entry): the timeout frame at once.
  const hogEntries = () => fs.readFileSync(path.join(gw.dir, 'hog.log'), 'utf8').split('\n').filter((l) => l === 'stuck').length;
  const entered = hogEntries();
  assert.match(await clients[0].request('{"action":"stuck"}', 5000), timeoutFrame);
  assert.equal(hogEntries(), entered, 'the handler was not called');
  assert.equal(threadCount(gw.proc.pid) <= baseline + 16 + 2, true, 'no thread was added for it');
  // Other handlers are served as before.
  assert.equal(await clients[1].request('{"action":"other","n":1}', 3000), '{"action":"other","n":1}');
  assert.ok(gw.alive());
  await gw.stop({ signal: 'SIGKILL' });
});

// The probe on every route: "sleep" times out after 100 ms; $disconnect may take disconnectDelayMs.
function stuckProbeRoutes({ disconnectDelayMs = 0, disconnectTimeoutMs } = {}) {
  return (dir) => {
    const table = probeRoutes({ routes: ['whoami'] })(dir);
    table.handlers.probe.config.disconnectDelayMs = disconnectDelayMs;
    table.routes.sleep = { handler: 'probe', routeResponse: true, timeoutMs: 100 };
    if (disconnectTimeoutMs) table.routes.$disconnect.timeoutMs = disconnectTimeoutMs;
    return table;
  };
}

const rowsOf = async (gw, id) => sqliteRows(gw.dbPath, `SELECT connection_id FROM connections WHERE connection_id = '${id}'`);

test('the cap is per route: past it only the stuck route fails fast; the same handler\'s $default and $disconnect run', async () => {
  const gw = await start({ routes: stuckProbeRoutes(), plugins: ['probe'], workers: 2, extraArgs: ['--max-stuck-threads', '2'] });
  const events = path.join(gw.dir, 'events.jsonl');
  const b = await Client.open(gw.url);
  const bId = await whoami(b);
  const a = await Client.open(gw.url);
  for (let i = 0; i < 3; ++i) a.send('{"action":"sleep","ms":60000}');
  for (let i = 0; i < 3; ++i) assert.match(await a.nextText(5000), timeoutFrame);  // 2 written off, the third not called
  await gw.waitForLog((l) => /handler not called/.test(l.msg ?? ''), 3000, 'the fail-fast warning');
  assert.match(await a.request('{"action":"sleep","ms":1}', 3000), timeoutFrame, 'the stuck route fails fast');
  assert.equal(await b.request('{"action":"hello"}', 3000), '{"action":"hello"}', '$default (nothing stuck on it) runs');
  await waitFor(async () => (await rowsOf(gw, bId)).length === 1, { what: "B's row" });
  await b.close();
  await waitForEvent(events, (e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === bId, { what: "B's $disconnect to run" });
  await waitFor(async () => (await rowsOf(gw, bId)).length === 0, { what: "B's row to go after its $disconnect" });
  assert.equal(eventsOf(events, bId, 'DISCONNECT').length, 1);
  assert.ok(gw.alive());
  await gw.stop({ signal: 'SIGKILL' });
});

test('a $disconnect of a route at the cap waits for one of its stuck threads to return, then runs; its row stays until then', async () => {
  // Each $disconnect stays in the probe for 3 s, past its 100 ms timeout: two of them reach the cap. The checks
  // that the third waits must be done before those return: the third close, its "waits" line and the reads
  // of the log and table all fit in that window, also under TSan on a loaded machine (1.5 s was tight).
  const gw = await start({ routes: stuckProbeRoutes({ disconnectDelayMs: 3000, disconnectTimeoutMs: 100 }), plugins: ['probe'],
    workers: 2, extraArgs: ['--max-stuck-threads', '2'] });
  const events = path.join(gw.dir, 'events.jsonl');
  const clients = await Promise.all([0, 1, 2].map(() => Client.open(gw.url)));
  const ids = [];
  for (const c of clients) ids.push(await whoami(c));
  await waitFor(async () => (await rowsOf(gw, ids[2])).length === 1, { what: 'the third row' });
  await clients[0].close();
  await clients[1].close();
  const writtenOff = () => gw.lines.filter((l) => l.msg === 'integration timeout' && l.routeKey === '$disconnect').length;
  await waitFor(() => writtenOff() === 2, { what: 'two $disconnects written off' });
  await clients[2].close();
  await gw.waitForLog((l) => /^\$disconnect waits/.test(l.msg ?? ''), 3000, 'the third $disconnect to wait');
  assert.equal(eventsOf(events, ids[2], 'DISCONNECT').length, 0, 'not run while its route is at the cap');
  assert.equal((await rowsOf(gw, ids[2])).length, 1, 'its row stays while it waits');
  await waitForEvent(events, (e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === ids[2],
    { timeoutMs: 8000, what: 'the waiting $disconnect to run once a stuck one returned' });
  await waitFor(async () => (await rowsOf(gw, ids[2])).length === 0, { timeoutMs: 5000, what: 'its row to go' });
  for (const id of ids) assert.equal(eventsOf(events, id, 'DISCONNECT').length, 1, `one $disconnect for ${id}`);
  assert.ok(gw.alive());
  await gw.stop({ signal: 'SIGKILL' });
});

test('SIGTERM with handlers stuck in plugin code (written off, and not yet timed out) exits 0 within --drain-seconds plus a few', async (t) => {
  const gw = await start({ routes: stuckRoutes(), plugins: ['hog', 'echo'], workers: 2, extraArgs: ['--drain-seconds', '2'] });
  const a = await Client.open(gw.url);
  const b = await Client.open(gw.url);
  a.send('{"action":"stuck"}');
  assert.match(await a.nextText(3000), timeoutFrame);  // written off, still spinning in hog.so
  b.send('{"action":"stuckslow"}');                   // 29 s timeout: still "running" at SIGTERM
  const hogLog = path.join(gw.dir, 'hog.log');
  await waitFor(() => fs.existsSync(hogLog) && fs.readFileSync(hogLog, 'utf8').split('\n').filter((l) => l.startsWith('stuck')).length === 2,
    { what: 'both handlers to be inside hog.so' });
  const t0 = Date.now();
  const exit = await gw.stop({ timeoutMs: 2000 + 5000 });  // throws unless exit 0 without SIGKILL
  const took = Date.now() - t0;
  t.diagnostic(`exited ${took} ms after SIGTERM with --drain-seconds 2`);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(took < 2000 + 5000, `exited ${took} ms after SIGTERM`);
  assert.ok(gw.lines.some((l) => l.msg === 'stopped'), 'the "stopped" line is written before leaving');
});

// A wrapper that runs the gateway under RLIMIT_NPROC, as a user ID of its own (RLIMIT_NPROC counts every
// task of the user, so a shared one such as nobody would count other tests' gateways too), with its own
// threads (measured without a limit) plus `spare`; and the directory it may write in.
async function threadBudget(t, { routes, plugins, spare }) {
  const probe = await start({ routes, plugins, workers: 2, extraArgs: ['--access-log', 'off'] });
  // Some threads start just after the "listening" line: count once the number has held for 300 ms.
  let own = threadCount(probe.proc.pid);
  for (let heldSince = Date.now(), until = Date.now() + 3000; Date.now() - heldSince < 300 && Date.now() < until;) {
    await new Promise((r) => setTimeout(r, 50));
    const now = threadCount(probe.proc.pid);
    if (now !== own) { own = now; heldSince = Date.now(); }
  }
  await probe.stop({ signal: 'SIGKILL' });
  const dir = fs.mkdtempSync('/tmp/wsgw-it-nproc-');
  fs.chmodSync(dir, 0o777);  // the gateway runs as another user here
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const uid = 200000 + Math.floor(Math.random() * 100000);
  return { dir, own, wrapper: ['prlimit', `--nproc=${own + spare}`, 'setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--'] };
}

test('a thread that cannot be created (RLIMIT_NPROC) is logged and survived; queued invocations get the integration error', async (t) => {
  if (process.getuid() !== 0) {
    t.skip('needs root to run the gateway as an otherwise unused user under a thread budget');
    return;
  }
  // The gateway's own threads plus room for two replacement workers.
  const { dir, wrapper } = await threadBudget(t, { routes: stuckRoutes(), plugins: ['hog', 'echo'], spare: 2 });
  const gw = await start({ dir, routes: stuckRoutes(), plugins: ['hog', 'echo'], workers: 2, extraArgs: ['--access-log', 'off'], wrapper });
  const c = await Client.open(gw.url);
  // Each stuck invocation writes its worker off; after two replacements no thread can be made.
  for (let i = 0; i < 6; ++i) c.send('{"action":"stuck"}');
  const texts = [];
  for (let i = 0; i < 6; ++i) texts.push(await c.nextText(5000));
  for (const text of texts) assert.ok(timeoutFrame.test(text) || internalError.test(text), text);
  await gw.waitForLog((l) => l.level === 'error' && /cannot start a handler worker thread/.test(l.msg ?? ''), 5000, 'the thread-creation error');
  // Every worker is stuck and none can be made: a message is answered, not left waiting.
  assert.match(await c.request('{"action":"echo-me"}', 3000), internalError);
  assert.ok(gw.alive(), 'the gateway survived');
  assert.equal((await fetch(`${gw.managementUrl}/metrics`)).status, 200, 'the management API still answers');
  await gw.stop({ signal: 'SIGKILL' });
});


test('a reload that needs more threads than the gateway may create is refused with a clear error; the running table serves on', async (t) => {
  if (process.getuid() !== 0) {
    t.skip('needs root to run the gateway as an otherwise unused user under a thread budget');
    return;
  }
  const { dir, wrapper } = await threadBudget(t, { routes: defaultRoutes(), plugins: ['echo', 'chat'], spare: 8 });
  const gw = await start({ dir, routes: defaultRoutes(), plugins: ['echo', 'chat'], workers: 2, extraArgs: ['--access-log', 'off'], wrapper });
  const c = await Client.open(gw.url);
  assert.equal(await c.request('before'), 'before');
  // 64 isolated workers need 64 supervisor threads: past the budget of 8.
  const table = JSON.parse(fs.readFileSync(gw.routesPath, 'utf8'));
  table.handlers = { ...(table.handlers ?? {}), iso: { plugin: 'echo', isolation: 'process', workers: 64 } };
  table.routes.iso = { handler: 'iso', routeResponse: true };
  fs.writeFileSync(gw.routesPath + '.tmp', JSON.stringify(table));
  fs.renameSync(gw.routesPath + '.tmp', gw.routesPath);
  const refused = await gw.waitForLog((l) => l.msg === 'reload refused; the running route table stays', 30000, 'the reload to be refused')
    .catch((err) => { throw new Error(`${err.message}\n${gw.rawLines.slice(-30).join('\n')}\n${gw.stderr.slice(-2000)}`); });
  assert.match(refused.error, /cannot start a supervisor thread for its worker processes: .*thread limit/, refused.error);
  assert.ok(gw.alive(), 'the gateway survived');
  assert.equal(await c.request('after', 5000), 'after', 'the running table still serves');
  assert.equal(await c.request('{"action":"iso"}', 5000), '{"action":"iso"}', 'the refused route is not there ($default echoes)');
  await gw.stop({ signal: 'SIGKILL' });
});

test('a start that needs more threads than it may create (64 function processes) fails with a clear error, not an abort', async (t) => {
  if (process.getuid() !== 0) {
    t.skip('needs root to run the gateway as an otherwise unused user under a thread budget');
    return;
  }
  const { dir, wrapper } = await threadBudget(t, { routes: defaultRoutes(), plugins: ['echo', 'chat'], spare: 8 });
  const routes = (d) => {
    fs.mkdirSync(path.join(d, 'fn'), { recursive: true });
    return {
      routeSelectionExpression: '$request.body.action',
      handlers: { fn: { lambda: { command: ['sleep', '60'], directory: 'fn', concurrency: 64 } } },
      routes: { $default: { handler: 'fn', routeResponse: true } },
    };
  };
  const gw = new Gateway(prepareDir({ dir, routes, plugins: [] }), { nodeId: 'nproc-node', workers: 2, logLevel: 'info' });
  gw.wrapper = wrapper;
  gw.spawn(['--access-log', 'off']);
  started.push(gw);
  const exit = await withTimeout(gw.exited, 30000, 'the gateway to refuse to start');
  const said = gw.stderr + gw.rawLines.join('\n');
  assert.equal(exit.signal, null, `no abort: ${JSON.stringify(exit)}\n${said.slice(-2000)}`);
  assert.notEqual(exit.code, 0);
  assert.match(said, /function 'fn': cannot start a supervisor thread for its function processes: .*thread limit/);
});

// Whichever thread of the start-up is the first that cannot be made (the table's writer, the reloader, the
// access log, a network thread, a worker), the gateway either starts and serves (the parts that can do with
// fewer threads) or exits (2: a start-up step refused, 1: a thread nothing expected) with a line saying what to
// do: never abort() with a core dump.
test('a start with fewer threads than it needs serves or exits with a clear error, never an abort', async (t) => {
  if (process.getuid() !== 0) {
    t.skip('needs root to run the gateway as an otherwise unused user under a thread budget');
    return;
  }
  const { own, wrapper: measured } = await threadBudget(t, { routes: defaultRoutes(), plugins: ['echo', 'chat'], spare: 0 });
  const outcomes = [];
  for (const budget of [1, 2, 3, Math.floor(own / 2), own - 2, own - 1]) {
    const dir = fs.mkdtempSync('/tmp/wsgw-it-nproc-');
    fs.chmodSync(dir, 0o777);
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const wrapper = [...measured];
    wrapper[1] = `--nproc=${budget}`;
    const gw = new Gateway(prepareDir({ dir, routes: defaultRoutes(), plugins: ['echo', 'chat'] }), { nodeId: 'nproc-node', workers: 2, logLevel: 'info' });
    gw.wrapper = wrapper;
    gw.spawn(['--access-log', 'off']);
    started.push(gw);
    const listening = gw.waitForLog((l) => l.msg === 'listening', 20000, 'listening').catch(() => new Promise(() => {}));
    let ended = await withTimeout(Promise.race([gw.exited, listening]), 20000, `budget ${budget}: listening or an exit`);
    if (ended.msg === 'listening') {
      const health = await fetch(`http://${ended.management}/healthz`).then((r) => r.status, (err) => err.message);
      if (health === 200) {
        outcomes.push(`${budget}: serves`);
        await gw.stop({ signal: 'SIGKILL' });
        continue;
      }
      // A thread made after the listening line could not be made: then it must have ended as below.
      const exit = await withTimeout(gw.exited, 5000, `budget ${budget}: listening, no answer (${health}), and no exit`);
      ended = exit;
    }
    const said = gw.stderr + gw.rawLines.join('\n');
    outcomes.push(`${budget}: exit ${ended.code}`);
    assert.equal(ended.signal, null, `budget ${budget}: no abort: ${JSON.stringify(ended)}\n${said.slice(-1500)}`);
    assert.ok(ended.code === 1 || ended.code === 2, `budget ${budget}: exit ${ended.code}: ${said.slice(-1500)}`);  // 2: a start-up step's own refusal
    assert.match(said, /thread limit|cannot start/, `budget ${budget}: the reason is given`);
  }
  t.diagnostic(`own threads ${own}; ${outcomes.join(', ')}`);
});

test('maxWorkerMemoryMb holds during the invocation: 6 x 32 MB fails at 64 MB, the worker is replaced, the next message works', async (t) => {
  const routes = (dir) => {
    const table = stuckRoutes({ isolation: 'process' })(dir);
    table.handlers.hog.workers = 1;
    table.handlers.hog.maxWorkerMemoryMb = 64;
    table.routes.alloc = { handler: 'hog', routeResponse: true, timeoutMs: 10000 };
    table.routes.pid = { handler: 'hog', routeResponse: true };
    return table;
  };
  const gw = await start({ routes, plugins: ['hog', 'echo'] });
  const c = await Client.open(gw.url);
  const firstPid = await c.request('{"action":"pid"}');
  assert.match(firstPid, /^\d+$/);
  // The worker's own resident memory before the plugin allocates anything (more in a sanitizer build).
  const startKb = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${firstPid}/status`, 'utf8'))[1]);
  // Read while the worker lives: the failed invocation below ends it.
  const tsan = /lib(tsan|clang_rt\.tsan)/.test(fs.readFileSync(`/proc/${firstPid}/maps`, 'utf8'));
  assert.equal(await c.request('{"action":"alloc","count":1,"mb":16}', 10000), 'allocated 16 MB');  // within the budget
  assert.match(await c.request('{"action":"alloc","count":6,"mb":32}', 10000), internalError);
  const peaks = fs.readFileSync(path.join(gw.dir, 'hog.log'), 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
  const peakKb = Math.max(...peaks.filter(([pid]) => pid === Number(firstPid)).map(([, kb]) => kb));
  t.diagnostic(`worker peak resident memory: ${peakKb} kB (${startKb} kB before the plugin allocated)`);
  assert.ok(peakKb > startKb + 16 * 1024, `the worker did allocate (peak ${peakKb} kB)`);
  // Under ThreadSanitizer resident memory includes the shadow of every byte touched (about 4x): the hard
  // limit still refused the allocation above, but resident memory no longer measures it.
  if (!tsan) assert.ok(peakKb <= startKb + (64 + 16) * 1024, `peak resident ${Math.round(peakKb / 1024)} MB: at most 64 MB plus the worker's own ${Math.round(startKb / 1024)} MB`);
  // It failed holding most of its budget: a fresh worker takes its place, and the next messages work.
  const secondPid = await waitFor(async () => {
    const p = await c.request('{"action":"pid"}');
    return p !== firstPid && /^\d+$/.test(p) ? p : null;
  }, { timeoutMs: 5000, what: 'a new worker process' });
  assert.notEqual(secondPid, firstPid);
  assert.equal(await c.request('{"action":"alloc","count":1,"mb":16}', 10000), 'allocated 16 MB');
  assert.equal(await c.request('plain text'), 'plain text');
  await gw.stop();
});

test('empty messages (Autobahn 1.1.1, 1.2.1): an empty body is echoed as an empty message, a NULL body sends nothing', async () => {
  const echo = await start({ routes: defaultRoutes(), plugins: ['echo', 'chat'] });
  const c = await Client.open(echo.url);
  c.send('');
  const text = await c.next();
  assert.equal(text.isBinary, false);
  assert.equal(text.data.length, 0);
  c.send(Buffer.alloc(0), { binary: true });
  const binary = await c.next();
  assert.equal(binary.isBinary, true);
  assert.equal(binary.data.length, 0);
  assert.equal(await c.request('after'), 'after');
  await c.close();
  await echo.stop();
  // An isolated worker keeps NULL and empty apart across its socket: the probe echoes the empty message,
  // and leaves resp->body NULL for "threadpush" (count 0), which sends nothing.
  const routes = (dir) => {
    const table = probeRoutes({ routes: ['threadpush'] })(dir);
    table.handlers.probe.isolation = 'process';
    table.handlers.probe.workers = 1;
    return table;
  };
  const gw = await start({ routes, plugins: ['probe'] });
  const p = await Client.open(gw.url);
  p.send('');
  const empty = await p.next();
  assert.equal(empty.isBinary, false);
  assert.equal(empty.data.length, 0);
  p.send('{"action":"threadpush","count":0}');
  p.send('after');
  assert.equal(await p.nextText(), 'after', 'nothing came for the NULL body');
  await p.close();
  await gw.stop();
});

test('an API-wide throttle of 50/s with burst 50 holds across two network threads (8 clients x 1,000 messages)', async (t) => {
  const routes = {
    routeSelectionExpression: '$request.body.action',
    throttle: { rate: 50, burst: 50 },
    routes: { $default: { handler: 'echo', routeResponse: true } },
  };
  const gw = await start({ routes, plugins: ['echo'], extraArgs: ['--network-threads', '2', '--access-log', 'off'] });
  const perThread = async () => {
    const text = await (await fetch(gw.managementUrl + '/metrics')).text();
    return [...text.matchAll(/^wsgw_network_thread_connections\{thread="(\d+)"\} (\d+)$/gm)].map((m) => Number(m[2]));
  };
  // The kernel spreads connections over the two threads by hash: eight clients with both threads holding
  // some, so that both take tokens from the one bucket (retried when all eight landed on one thread).
  let active = [];
  await waitFor(async () => {
    for (const c of active) c.terminate();
    await waitFor(async () => (await perThread()).every((n) => n === 0), { what: 'no connection left' });
    active = await Promise.all(Array.from({ length: 8 }, () => Client.open(gw.url)));
    const counts = await waitFor(async () => {
      const n = await perThread();
      return n.reduce((a, b) => a + b, 0) === 8 ? n : null;
    }, { what: 'eight connections in the metrics' });
    return counts.length === 2 && counts.every((n) => n > 0);
  }, { timeoutMs: 20000, intervalMs: 1, what: 'connections on both network threads' });
  const perClient = 1000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < perClient; ++i) for (const c of active) c.send(`m${i}`);
  const results = await Promise.all(active.map((c) => c.collectTexts(perClient, 30000)));
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const throttled = errorFrameRegex('Too Many Requests');
  const all = results.flat();
  const passed = all.filter((t) => !throttled.test(t)).length;
  const limit = 50 + 50 * elapsed + 2;
  t.diagnostic(`${passed} of ${all.length} passed in ${elapsed.toFixed(2)} s (at most ${limit.toFixed(1)})`);
  assert.equal(all.length, 8 * perClient, 'one answer per message');
  assert.ok(passed >= 50, `the burst passes (${passed})`);
  assert.ok(passed <= limit, `${passed} messages passed in ${elapsed.toFixed(2)} s; at most ${limit.toFixed(1)} may`);
  for (const c of active) c.terminate();
  await gw.stop();
});

test('event_json answers for the real event, from the handler and its own thread, and NULL for a look-alike copy', async () => {
  const gw = await start({ routes: stuckRoutes(), plugins: ['hog', 'echo'] });
  const c = await Client.open(gw.url);
  assert.equal(await c.request('{"action":"eventjson"}'), 'copy:null own:json thread:json');
  await c.close();
  await gw.stop();
  const isolated = await start({ routes: stuckRoutes({ isolation: 'process' }), plugins: ['hog', 'echo'] });
  const d = await Client.open(isolated.url);
  assert.equal(await d.request('{"action":"eventjson"}'), 'copy:null own:json thread:json');
  await d.close();
  await isolated.stop();
});

test('a proxy-only routes.json with no routes is accepted and relays to its backend', async () => {
  const backend = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await withTimeout(new Promise((resolve) => backend.on('listening', resolve)), 5000, 'the backend to listen');
  backend.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  try {
    const routes = { routeSelectionExpression: '$request.body.action', proxy: { url: `ws://127.0.0.1:${backend.address().port}/` } };
    const gw = await start({ routes, plugins: [] });
    const c = await Client.open(gw.url);
    assert.equal(await c.request('through the proxy'), 'through the proxy');
    await c.close();
    await gw.stop();
  } finally {
    backend.close();
  }
});

// Every connection is a descriptor: a soft RLIMIT_NOFILE below the hard one (1024 is a common default) is
// raised to the hard one at start, so the gateway is not capped at about a thousand connections by the
// shell it was started from.
test('the soft descriptor limit is raised to the hard one at start', async () => {
  const gw = await start({ routes: probeRoutes(), plugins: ['probe'], wrapper: ['prlimit', '--nofile=256:1024', '--'] });
  const line = fs.readFileSync(`/proc/${gw.proc.pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  assert.match(line, /^Max open files\s+1024\s+1024\s+files/, line);
  const c = await Client.open(gw.url);
  assert.match(await whoami(c), /^[A-Za-z0-9_-]{22}$/);
  await c.close();
});
