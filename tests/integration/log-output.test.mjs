// Log output that nobody takes (docs/operations.md, "Logs"): a stdout whose reader stopped reading (a full
// pipe: a stalled log collector, `wsgw | less` left paused) must not stop the network threads, however many
// log lines a client makes the gateway write, nor keep a SIGTERM from ending the process; an access log on a
// full disk loses lines, and says so. The gateway's stdout here is the pipe the test reads; pausing that
// stream stops reading it, and the kernel's buffer fills as it would for any stalled reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Gateway, WebSocket, rawHttp, waitFor, withTimeout } from './harness.mjs';

const echoRoutes = { routeSelectionExpression: '$request.body.action', routes: { $default: { handler: 'echo', routeResponse: true } } };

// A plain HTTP request to the public port is refused with 426 and logged ("upgrade refused"): at debug level
// one log line per request that anyone can make (at info, at most 10 a second per thread: credential-floods.test.mjs). Sends `count` of them, `parallel` at a time; resolves with how many were
// answered within 2 s each (stops at the first that was not).
async function refusals(gw, count, parallel = 10) {
  let answered = 0;
  for (let i = 0; i < count; i += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - i) }, () => rawHttp(gw.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 2000));
    const results = await Promise.allSettled(batch);
    for (const r of results) {
      if (r.status !== 'fulfilled') return answered;
      assert.equal(r.value.status, 426);
      answered++;
    }
  }
  return answered;
}

// One echo on each client; the slowest round trip in ms (throws when one takes over 2 s).
async function echoAll(clients) {
  const times = await Promise.all(clients.map(async (ws, i) => {
    const started = Date.now();
    const got = new Promise((resolve) => ws.once('message', (data) => resolve(String(data))));
    ws.send(`ping ${i}`);
    assert.equal(await withTimeout(got, 2000, `the echo on client ${i}`), `ping ${i}`);
    return Date.now() - started;
  }));
  return Math.max(...times);
}

async function openClients(gw, n) {
  const clients = [];
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(gw.url);
    await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'open');
    clients.push(ws);
  }
  return clients;
}

async function droppedMetric(gw, log) {
  const text = await (await fetch(`${gw.managementUrl}/metrics`)).text();
  const m = new RegExp(`^wsgw_log_lines_dropped_total\\{log="${log}"\\} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `wsgw_log_lines_dropped_total{log="${log}"} is in /metrics`);
  return Number(m[1]);
}

test('a stdout nobody reads stops no network thread; the lines lost are counted and reported once it reads again', async () => {
  const gw = await Gateway.start({ routes: echoRoutes, plugins: ['echo'], logLevel: 'debug',
                                  extraArgs: ['--access-log', 'off', '--network-threads', '2'] });
  let clients = [];
  try {
    clients = await openClients(gw, 8);  // on both network threads
    await echoAll(clients);
    gw.proc.stdout.pause();  // the log's reader stops reading
    // Before the fix the pipe filled after ~250 refused requests, and the network thread writing the next
    // log line stopped there: no more answers, and its connections' echoes stopped too.
    assert.equal(await refusals(gw, 1000), 1000, 'every refused request is answered while stdout takes nothing');
    // More, until the log's queue (1 MiB) and the pipe are full and lines are dropped.
    let sent = 1000;
    while (sent < 20000 && (await droppedMetric(gw, 'application')) === 0) {
      assert.equal(await refusals(gw, 500), 500, `every refused request is answered while stdout takes nothing (after ${sent})`);
      sent += 500;
    }
    assert.ok(await droppedMetric(gw, 'application') > 0, `the lines that did not fit are counted (${sent} refusals)`);
    assert.equal(await refusals(gw, 500), 500, 'requests are still answered once lines are being dropped');
    assert.ok(await echoAll(clients) < 2000);
    gw.proc.stdout.resume();
    const report = await gw.waitForLog((l) => l.level === 'warn' && /^log lines were dropped/.test(l.msg ?? ''), 10000,
                                       'the warning about dropped log lines');
    assert.ok(report.dropped > 0);
    assert.equal(report.droppedTotal, report.dropped);
    // Logging works again: a new refusal's line arrives.
    const before = gw.lines.length;
    assert.equal(await refusals(gw, 1), 1);
    await waitFor(() => gw.lines.slice(before).some((l) => l.msg === 'upgrade refused'), { what: 'a new "upgrade refused" line' });
  } finally {
    for (const ws of clients) ws.terminate();
    gw.proc.stdout.resume();
    await gw.stop();
  }
});

test('SIGTERM ends the gateway while its stdout takes nothing', async () => {
  const gw = await Gateway.start({ routes: echoRoutes, plugins: ['echo'], extraArgs: ['--drain-seconds', '2'] });
  try {
    const [ws] = await openClients(gw, 1);
    gw.proc.stdout.pause();
    // Access log lines (one per echo, ~350 bytes) fill stdout's buffer; they are written by the access log's
    // own thread, so the echoes go on meanwhile, before the fix as after.
    for (let i = 0; i < 3000; i++) await echoAll([ws]);
    ws.close();
    const started = Date.now();
    gw.proc.kill('SIGTERM');
    // The drain (2 s at most), then at most 2 s for each log's last lines: before the fix, the process
    // waited in write(2) for as long as nobody read (here: until the test's 15 s timeout).
    const exit = await withTimeout(gw.exited, 15000, 'wsgw to exit after SIGTERM with its stdout not read');
    const took = Date.now() - started;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(took < 9000, `stopped in ${took} ms`);
  } finally {
    gw.proc.stdout.resume();
    if (gw.alive()) gw.proc.kill('SIGKILL');
    await gw.exited;
  }
});

test('an access log on a full disk loses its lines and says so, once per 10 s, in the log and the metrics', async () => {
  const gw = await Gateway.start({ routes: echoRoutes, plugins: ['echo'], extraArgs: ['--access-log', '/dev/full'] });
  let clients = [];
  try {
    clients = await openClients(gw, 2);
    for (let i = 0; i < 20; i++) await echoAll(clients);
    const warning = await gw.waitForLog((l) => l.msg === 'access log: lines could not be written and are lost', 5000,
                                        'the warning about lost access log lines');
    assert.equal(warning.level, 'warn');
    assert.equal(warning.error, 'No space left on device');
    assert.ok(warning.lost > 0);
    // Every line after it is lost too, and counted; the warning does not repeat within 10 s.
    const counted = await droppedMetric(gw, 'access');
    for (let i = 0; i < 20; i++) await echoAll(clients);
    await waitFor(async () => (await droppedMetric(gw, 'access')) >= counted + 40, { what: 'the 40 later lines to be counted' });
    assert.equal(gw.lines.filter((l) => l.msg === warning.msg).length, 1);
    assert.equal(await droppedMetric(gw, 'application'), 0);
  } finally {
    for (const ws of clients) ws.terminate();
    await gw.stop();
  }
});

// Descriptors of process `pid` open on files that no longer exist (their space is not given back).
function deletedFilesOpen(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try { return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).endsWith('(deleted)'); } catch { return false; }
  }).length;
}

test('an access log file renamed or deleted by log rotation is created again under its name', async () => {
  const gw = await Gateway.start({ routes: echoRoutes, plugins: ['echo'], extraArgs: ['--access-log', 'access.log'] });
  const file = path.join(gw.dir, 'access.log');
  let clients = [];
  try {
    clients = await openClients(gw, 1);
    await echoAll(clients);
    await waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('"eventType":"MESSAGE"'), { what: 'the first lines' });
    // logrotate's default: rename, then the program is expected to write to a new file of the old name.
    // Before, lines went on into access.log.1 and no access.log came back.
    fs.renameSync(file, `${file}.1`);
    await waitFor(async () => { await echoAll(clients); return fs.existsSync(file); }, { what: 'access.log to be created again' });
    await echoAll(clients);
    await waitFor(() => fs.readFileSync(file, 'utf8').includes('"eventType":"MESSAGE"'), { what: 'new lines in the new file' });
    const rotated = fs.readFileSync(`${file}.1`, 'utf8').split('\n').filter(Boolean).length;
    await echoAll(clients);
    await waitFor(() => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length >= 2, { what: 'the next line in the new file' });
    assert.equal(fs.readFileSync(`${file}.1`, 'utf8').split('\n').filter(Boolean).length, rotated, 'nothing more goes to the rotated file');
    // Deleted (the rotated file compressed and removed, or the log deleted by hand): the gateway lets go of it.
    fs.unlinkSync(`${file}.1`);
    fs.unlinkSync(file);
    await waitFor(async () => { await echoAll(clients); return fs.existsSync(file); }, { what: 'access.log to be created again after its deletion' });
    assert.equal(deletedFilesOpen(gw.proc.pid), 0, 'no deleted log file is held open');
  } finally {
    for (const ws of clients) ws.terminate();
    await gw.stop();
  }
});
