// "inline": true on an in-process handler (docs/routes-json.md): a message of its route runs on the network
// thread when its connection has nothing waiting for or inside a worker, and is answered exactly as a worker
// invocation would be. Two instances of the probe share one .so: "fast" is inline, "slow" is not. The probe's
// "tid" action tells which thread ran it; with one network thread that thread is the gateway's main thread,
// whose ID is its process ID.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Gateway, Client, runExpectingExit, metricValue, errorFrameRegex, waitFor } from './harness.mjs';

let gw;
let a;
let b;
let idA;
let idB;

// Messages are routed by "route"; the probe acts on "action" (no action: an echo).
const routesFor = (dir, extraFast = {}) => ({
  routeSelectionExpression: '$request.body.route',
  handlers: {
    slow: { plugin: 'probe', config: { log: path.join(dir, 'events.jsonl') } },
    fast: { plugin: 'probe', config: { log: path.join(dir, 'events-inline.jsonl') }, inline: true, ...extraFast },
  },
  routes: {
    $connect: { handler: 'fast' },  // an inline handler's $connect and $disconnect still run on workers
    $disconnect: { handler: 'fast' },
    worker: { handler: 'slow', routeResponse: true },
    inline: { handler: 'fast', routeResponse: true },
    $default: { handler: 'fast', routeResponse: true },
  },
});

const inline = (action, fields = {}) => JSON.stringify({ route: 'inline', action, ...fields });
const worker = (action, fields = {}) => JSON.stringify({ route: 'worker', action, ...fields });
const inlineCount = () => metricValue(gw, 'wsgw_inline_invocations_total');

before(async () => {
  gw = await Gateway.start({ routes: (dir) => routesFor(dir), plugins: ['probe'], workers: 2, extraArgs: ['--network-threads', '1'] });
  a = await Client.open(gw.url);
  b = await Client.open(gw.url);
  idA = await a.request(inline('whoami'));
  idB = await b.request(inline('whoami'));
});

after(async () => {
  a?.terminate();
  b?.terminate();
  await gw?.stop();
});

test('an inline route answers from the network thread; a worker route from a worker', async () => {
  const before = await inlineCount();
  assert.equal(await a.request('plain echo, $default is inline'), 'plain echo, $default is inline');
  assert.equal(Number(await a.request(inline('tid'))), gw.proc.pid, 'the inline handler ran on the network (main) thread');
  assert.notEqual(Number(await a.request(worker('tid'))), gw.proc.pid, 'the worker route ran elsewhere');
  // The worker's lane may still be marked busy for a moment after its answer left: then one more goes through it.
  await waitFor(async () => Number(await a.request(inline('tid'))) === gw.proc.pid, { what: 'an inline run after the worker\'s lane emptied' });
  assert.ok(await inlineCount() >= before + 3, 'wsgw_inline_invocations_total counted them');
  assert.equal(await metricValue(gw, 'wsgw_pending_bytes'), 0, 'nothing is left counted as pending');
});

test('a connection\'s messages keep their order when an inline route follows a slow worker route', async () => {
  const before = await inlineCount();
  a.send(worker('sleep', { ms: 300 }));
  a.send(inline('tid'));           // its lane is busy: it waits for the worker, on a worker
  a.send(worker('sleep', { ms: 50 }));
  a.send('inline echo after the second sleep');
  const answers = await a.collectTexts(4, 5000);
  assert.equal(answers[0], 'slept');
  assert.notEqual(Number(answers[1]), gw.proc.pid, 'behind a busy lane the inline route ran on a worker, in turn');
  assert.deepEqual(answers.slice(2), ['slept', 'inline echo after the second sleep']);
  assert.equal(await inlineCount(), before, 'none of them ran inline');
  // Many in a row, inline and worker routes mixed: answered in the order sent.
  const sent = [];
  for (let i = 0; i < 40; ++i) {
    const text = `m-${i}`;
    sent.push(text);
    a.send(i % 5 === 2 ? JSON.stringify({ route: 'worker', echo: text }) : text);
  }
  const got = (await a.collectTexts(40, 5000)).map((t) => (t.startsWith('{') ? JSON.parse(t).echo : t));
  assert.deepEqual(got, sent);
});

test('post_to_connection from an inline handler reaches another connection and the caller itself, before its response', async () => {
  const before = await inlineCount();
  assert.equal(await a.request(inline('push', { to: idB, data: 'to-b-from-inline' })), '0');
  assert.equal(await b.nextText(), 'to-b-from-inline');
  a.send(inline('push', { to: idA, data: 'to-self-from-inline' }));
  assert.deepEqual(await a.collectTexts(2), ['to-self-from-inline', '0'], 'the push comes before the route response');
  assert.equal(await a.request(inline('push', { to: 'AAAAAAAAAAAAAAAAAAAAAA', data: 'x' })), '1', 'an unknown connection is GONE');
  assert.ok(await inlineCount() >= before + 3);
});

test('an inline handler that fails or throws gets the same error frame as a worker one, logged the same', async () => {
  const before = await inlineCount();
  for (const action of ['fail', 'throw']) {
    const inlineFrame = await a.request(inline(action));
    const workerFrame = await a.request(worker(action));
    for (const frame of [inlineFrame, workerFrame]) {
      const m = errorFrameRegex('Internal server error').exec(frame);
      assert.ok(m, `frame ${JSON.stringify(frame)}`);
      assert.equal(m[1], idA);
    }
  }
  assert.ok(await inlineCount() >= before + 1, 'at least the first inline one ran inline');
  const accessErrors = (route) => gw.lines.filter((l) => l.msg === 'access' && l.routeKey === route && l.status === 500);
  await waitFor(() => accessErrors('inline').length >= 2 && accessErrors('worker').length >= 2, { what: 'the access log lines of the errors' });
  assert.equal(await a.request('still open'), 'still open');
});

test('an inline call that holds the network thread past its route\'s timeoutMs is answered, counted and warned about', async () => {
  // The inline route here has timeoutMs 200; the probe sleeps 400 ms on the network thread.
  const g = await Gateway.start({
    routes: (dir) => {
      const table = routesFor(dir);
      table.routes.inline.timeoutMs = 200;
      return table;
    },
    plugins: ['probe'], workers: 2, extraArgs: ['--network-threads', '1'],
  });
  try {
    const c = await Client.open(g.url);
    assert.equal(await c.request(inline('sleep', { ms: 50 })), 'slept');
    assert.equal(await metricValue(g, 'wsgw_inline_overruns_total'), 0, 'a call within timeoutMs is no overrun');
    const inlineBefore = await metricValue(g, 'wsgw_inline_invocations_total');
    assert.equal(await c.request(inline('sleep', { ms: 400 })), 'slept', 'its answer is still sent');
    assert.equal(await metricValue(g, 'wsgw_inline_invocations_total'), inlineBefore + 1, 'it ran inline');
    assert.equal(await metricValue(g, 'wsgw_inline_overruns_total'), 1);
    const warning = await waitFor(() => g.lines.find((l) => l.level === 'warn' && /inline handler held its network thread/.test(l.msg)),
      { what: 'the overrun warning' });
    assert.equal(warning.handler, 'fast');
    assert.equal(warning.routeKey, 'inline');
    assert.equal(warning.timeoutMs, 200);
    assert.ok(warning.ranMs >= 400, `ranMs ${warning.ranMs}`);
    await c.close();
  } finally {
    await g.stop();
  }
});

test('inline is refused at start for an isolated handler, naming the JSON path', async () => {
  const r = await runExpectingExit({ routes: (dir) => routesFor(dir, { isolation: 'process' }), plugins: ['probe'] });
  assert.notEqual(r.code, 0, `exit status ${r.code}`);
  assert.match(r.stderr, /routes\.json: \/handlers\/fast\/inline: an inline handler runs on the network thread/);
});

test('inline is refused at reload (on a route, an http route), and the running table keeps serving', async () => {
  const refusals = () => gw.lines.filter((l) => l.msg === 'reload refused; the running route table stays');
  const good = fs.readFileSync(gw.routesPath, 'utf8');
  const cases = [
    [routesFor(gw.dir, { isolation: 'process' }), /\/handlers\/fast\/inline: an inline handler runs on the network thread/],
    [{ ...routesFor(gw.dir), routes: { ...routesFor(gw.dir).routes, hook: { http: 'http://127.0.0.1:9/hook', inline: true } } },
      /\/routes\/hook\/inline: "inline" is a setting of a handler, not of a route/],
  ];
  for (const [table, expected] of cases) {
    const n = refusals().length;
    const tmp = `${gw.routesPath}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(table, null, 2));
    fs.renameSync(tmp, gw.routesPath);
    await waitFor(() => refusals().length > n, { timeoutMs: 5000, what: `a refusal matching ${expected}` });
    assert.match(refusals().at(-1).error, expected);
    assert.equal(Number(await a.request(inline('tid'))), gw.proc.pid, 'the running table still runs it inline');
  }
  const tmp = `${gw.routesPath}.tmp`;
  fs.writeFileSync(tmp, good);
  fs.renameSync(tmp, gw.routesPath);
});
