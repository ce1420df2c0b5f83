// Hot reload: a plugin replaced with `cp` while 50 clients keep sending, an invocation running across a
// reload, invalid edits refused while the old table serves, unchanged instances kept, and SIGHUP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Gateway, TEST_PLUGINS_DIR, makeTempDir, metricValue, waitFor, withTimeout } from './harness.mjs';

const v1 = path.join(TEST_PLUGINS_DIR, 'tagged_v1.so');
const v2 = path.join(TEST_PLUGINS_DIR, 'tagged_v2.so');
let gw;
let dir;
let taggedSo;
let taggedLog;

const routesWith = (extra = {}) => ({
  routeSelectionExpression: '$request.body.action',
  handlers: { tagged: { config: { log: taggedLog } } },
  routes: { $default: { handler: 'tagged', routeResponse: true }, ...extra },
});
const logLines = () => (fs.existsSync(taggedLog) ? fs.readFileSync(taggedLog, 'utf8').split('\n').filter(Boolean) : []);
const reloads = () => gw.lines.filter((l) => l.msg === 'route table reloaded');
const refusals = () => gw.lines.filter((l) => l.msg === 'reload refused; the running route table stays');

// Writes a file the way an editor does: a new file renamed over the old one.
function replaceFile(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

before(async () => {
  dir = makeTempDir();
  taggedLog = path.join(dir, 'tagged.log');
  fs.mkdirSync(path.join(dir, 'handlers'));
  taggedSo = path.join(dir, 'handlers', 'tagged.so');
  fs.copyFileSync(v1, taggedSo);
  gw = await Gateway.start({ dir, routes: routesWith({ echo: { handler: 'echo', routeResponse: true } }), plugins: ['echo'] });
});

after(async () => {
  await gw?.stop();
});

test('cp of a new tagged.so over the old one while 50 clients send: no connection closes, every reply comes from exactly one version, and v1 never answers after v2 did', async () => {
  const clients = await Promise.all(Array.from({ length: 50 }, () => Client.open(gw.url)));
  const stats = clients.map(() => ({ v1: 0, v2: 0, v1AfterV2: 0, other: [] }));
  let firstV2At = null;
  const loops = clients.map(async (c, i) => {
    const st = stats[i];
    for (let n = 0; n < 5000 && st.v2 < 20; ++n) {
      const body = `client${i}-msg${n}`;
      const reply = await c.request(body, 5000);
      if (reply === `v1:${body}`) {
        st.v1 += 1;
        if (st.v2) st.v1AfterV2 += 1;
      } else if (reply === `v2:${body}`) {
        st.v2 += 1;
        firstV2At ??= performance.now();
      } else {
        st.other.push(reply);
      }
    }
  });
  // The swap comes once every client has been served by v1 (so each one sees the change from v1 to v2).
  await waitFor(() => stats.every((st) => st.v1 > 0), { timeoutMs: 10000, what: 'every client to be served by v1' });
  const reloadsBefore = reloads().length;
  const copiedAt = performance.now();
  fs.copyFileSync(v2, taggedSo); // in place, as `cp` does: the gateway loads from its own private copy
  await withTimeout(Promise.all(loops), 30000, 'every client to get 20 replies from v2');

  for (const [i, st] of stats.entries()) {
    assert.deepEqual(st.other, [], `client ${i}: replies from neither version`);
    assert.ok(st.v1 > 0, `client ${i} was served by v1 before the swap`);
    assert.equal(st.v2, 20, `client ${i} reached v2`);
    assert.equal(st.v1AfterV2, 0, `client ${i} got a v1 reply after a v2 reply`);
  }
  for (const c of clients) assert.equal(c.closeInfo, null, 'no connection closed');
  const line = await gw.waitForLog((l) => l.msg === 'route table reloaded' && reloads().indexOf(l) >= reloadsBefore, 5000, 'the reload');
  assert.equal(line.loaded, 'tagged');
  assert.equal(line.kept, 'echo', 'the unchanged echo instance is carried over');
  // The old version is shut down once nothing runs on it any more.
  await waitFor(() => logLines().includes('shutdown v1'), { what: 'v1 to be shut down' });
  assert.deepEqual(logLines(), ['init v1', 'init v2', 'shutdown v1']);
  const ms = (firstV2At - copiedAt).toFixed(1);
  console.log(`# file change to first reply from the new version: ${ms} ms (reloadUs ${line.reloadUs})`);
  await Promise.all(clients.map((c) => c.close()));
});

test('an invocation running across a reload finishes on the version it started with; that version is shut down after it', async () => {
  const c = await Client.open(gw.url);
  const slow = '{"action":"slow","ms":800}';
  c.send(slow);
  // The reload must come while the slow invocation is in hand: wsgw_pending_bytes counts a message from the
  // moment the gateway read it and bound it to the running table (v2) until its handler returns, 800 ms on.
  await waitFor(async () => (await metricValue(gw, 'wsgw_pending_bytes')) >= slow.length,
    { timeoutMs: 5000, intervalMs: 10, what: 'the slow message to be read and in hand' });
  const n = reloads().length;
  fs.copyFileSync(v1, taggedSo);
  await waitFor(() => reloads().length > n, { timeoutMs: 5000, what: 'the reload' });
  assert.equal(await c.request('after-reload'), 'v2:' + slow, 'the slow reply comes first, from v2');
  assert.equal(await c.nextText(), 'v1:after-reload');
  await waitFor(() => logLines().filter((l) => l === 'shutdown v2').length === 1, { what: 'v2 to be shut down' });
  assert.deepEqual(logLines().slice(3), ['init v1', 'shutdown v2']);
  await c.close();
});

test('invalid edits are refused with a clear error and the running table keeps serving', async () => {
  const c = await Client.open(gw.url);
  const routesPath = gw.routesPath;
  const good = fs.readFileSync(routesPath, 'utf8');
  const cases = [
    ['{ "routeSelectionExpression": ', /routes\.json: invalid JSON at line 1, column \d+/],
    [JSON.stringify({ ...routesWith(), routes: { $default: { handler: 'tagged', routeResponse: 'yes' } } }),
      /routes\.json: \/routes\/\$default\/routeResponse: expected boolean, got string/],
    [JSON.stringify(routesWith({ orders: { handler: 'nothere' } })), /nothere\.so does not exist/],
    // A second "$default" (JSON.stringify cannot write one): refused, not one of the two taken silently.
    [JSON.stringify(routesWith()).replace('"routes":{', '"routes":{"$default":{"handler":"echo"},'),
      /routes\.json: \/routes: the key '\$default' appears more than once in this object/],
    // 200,000 levels of nesting (1 MB) overflowed the reloader's stack: the gateway died with SIGSEGV.
    ['{"a":'.repeat(200000), /routes\.json: arrays and objects nest deeper than 512 levels/],
  ];
  for (const [text, expected] of cases) {
    const before = refusals().length;
    replaceFile(routesPath, text);
    await waitFor(() => refusals().length > before, { timeoutMs: 5000, what: `a refusal matching ${expected}` });
    assert.match(refusals().at(-1).error, expected);
    assert.equal(await c.request('still-served'), 'v1:still-served');
  }
  // A broken plugin dropped over the running one is refused too; the loaded copy keeps serving.
  for (const [bad, expected] of [['nosymbol.so', /does not export wsgw_handler_v1/], ['badabi.so', /built for handler ABI version 99,/]]) {
    replaceFile(routesPath, good);
    const before = refusals().length;
    fs.copyFileSync(path.join(TEST_PLUGINS_DIR, bad), taggedSo);
    await waitFor(() => refusals().length > before, { timeoutMs: 5000, what: `the refusal of ${bad}` });
    assert.match(refusals().at(-1).error, expected);
    assert.match(refusals().at(-1).error, /tagged\.so/);
    assert.equal(await c.request('still-v1'), 'v1:still-v1');
  }
  // A copy cut short that settles (a cp that paused past the settle time, or ended on a full disk): refused
  // with what is wrong. glibc mapped its segments past the end of the file and the gateway died of SIGBUS.
  for (const cut of [3000, 8000]) {
    replaceFile(routesPath, good);
    const before = refusals().length;
    fs.writeFileSync(taggedSo, fs.readFileSync(v2).subarray(0, cut));
    await waitFor(() => refusals().length > before, { timeoutMs: 5000, what: `the refusal of a tagged.so cut at ${cut} bytes` });
    assert.match(refusals().at(-1).error, new RegExp(`tagged\\.so is cut short: its .* but the file has ${cut} bytes`));
    assert.equal(await c.request('still-v1'), 'v1:still-v1');
  }
  assert.ok(gw.alive());
  assert.equal(c.closeInfo, null);
  // Putting a good plugin back is picked up again.
  const n = reloads().length;
  fs.copyFileSync(v2, taggedSo);
  await waitFor(() => reloads().length > n, { timeoutMs: 5000, what: 'the reload of v2' });
  assert.equal(await c.request('back'), 'v2:back');
  await c.close();
});

test('a valid routes.json edit adds a route; unchanged handler instances keep their state', async () => {
  const inits = logLines().filter((l) => l.startsWith('init')).length;
  const n = reloads().length;
  replaceFile(gw.routesPath, JSON.stringify(routesWith({ ping: { handler: 'echo', routeResponse: true } })));
  await waitFor(() => reloads().length > n, { timeoutMs: 5000, what: 'the reload' });
  assert.equal(reloads().at(-1).kept, 'echo,tagged');
  assert.equal(reloads().at(-1).loaded, '');
  const c = await Client.open(gw.url);
  assert.equal(await c.request('{"action":"ping"}'), '{"action":"ping"}');
  assert.equal(await c.request('{"action":"echo"}'), 'v2:{"action":"echo"}', 'the removed echo route now falls to $default');
  assert.equal(logLines().filter((l) => l.startsWith('init')).length, inits, 'tagged was not initialised again');
  await c.close();
});

test('SIGHUP reloads too', async () => {
  const n = reloads().length;
  gw.proc.kill('SIGHUP');
  await waitFor(() => reloads().length > n, { timeoutMs: 5000, what: 'the SIGHUP reload' });
  assert.equal(reloads().at(-1).cause, 'SIGHUP');
  assert.equal(reloads().at(-1).loaded, '');
  const c = await Client.open(gw.url);
  assert.equal(await c.request('hup'), 'v2:hup');
  await c.close();
  assert.ok(gw.alive());
});

// routes.json replaced by something that is not a regular file, or by a huge file: read as it was, a
// symlink to /dev/zero grew memory without end on a full core, and a FIFO hung every later reload. Each is
// refused with what it is; the running table keeps serving, and a good file afterwards is applied.
test('a routes.json that is a device, a FIFO or larger than 16 MiB is refused, and a good file after it is applied', async () => {
  const c = await Client.open(gw.url);
  const routesPath = gw.routesPath;
  const good = fs.readFileSync(routesPath, 'utf8');
  const fifo = path.join(dir, 'routes.fifo');
  execFileSync('mkfifo', [fifo]);
  const huge = path.join(dir, 'routes.huge');
  fs.writeFileSync(huge, `{"routes": {}, "pad": "${' '.repeat(17 * 1024 * 1024)}"}`);
  const cases = [
    ['/dev/zero', /routes\.json: is a character device, not a regular file/],
    [fifo, /routes\.json: is a FIFO, not a regular file/],
    [huge, /routes\.json: is larger than 16 MiB/],
  ];
  for (const [target, expected] of cases) {
    const before = refusals().length;
    const link = `${routesPath}.link-${process.pid}`;
    fs.symlinkSync(target, link);
    fs.renameSync(link, routesPath);
    gw.proc.kill('SIGHUP');
    await waitFor(() => refusals().length > before, { timeoutMs: 5000, what: `a refusal matching ${expected}` });
    assert.match(refusals().at(-1).error, expected);
    assert.equal(await c.request('still-served'), 'v2:still-served');
  }
  const n = reloads().length;
  replaceFile(routesPath, good);
  gw.proc.kill('SIGHUP');
  await waitFor(() => reloads().length > n, { timeoutMs: 5000, what: 'the reload of the good file' });
  assert.equal(await c.request('good-again'), 'v2:good-again');
  assert.ok(gw.alive());
  await c.close();
});
