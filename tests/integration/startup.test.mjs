// Start-up refusals: a bad routes.json or a bad plugin stops wsgw within 5 s with a non-zero status and
// a plain message on stderr that names the file, where in it, and what is wrong. A valid control start
// proves the failures come from the defect, not from the set-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Gateway, runExpectingExit } from './harness.mjs';

const valid = {
  routeSelectionExpression: '$request.body.action',
  routes: { $default: { handler: 'echo', routeResponse: true } },
};

function assertRefused(r) {
  assert.equal(r.timedOut, false, `wsgw was still running after 5 s; stderr: ${r.stderr}`);
  assert.ok(r.elapsedMs < 5000, `took ${r.elapsedMs} ms`);
  assert.notEqual(r.code, 0, `exit status ${r.code}; stderr: ${r.stderr}`);
  assert.equal(r.signal, null, `wsgw died of ${r.signal} instead of exiting; stderr: ${r.stderr}`);
  assert.ok(!/"msg":"listening"/.test(r.stdout), 'it never listened');
  assert.ok(r.stderr.trim().length > 0, 'stderr has the reason');
}

test('control: the same set-up with a valid routes.json starts', async () => {
  const gw = await Gateway.start({ routes: valid, plugins: ['echo'], startTimeoutMs: 5000 });
  try {
    assert.ok(gw.alive());
  } finally {
    await gw.stop();
  }
});

test('malformed JSON: the message names the file and a line and column', async () => {
  const r = await runExpectingExit({ routes: '{\n  "routes": {\n    "$default": { "handler": "echo", }\n  }\n}\n', plugins: ['echo'] });
  assertRefused(r);
  assert.ok(r.stderr.includes(r.routesPath), `stderr does not name ${r.routesPath}: ${r.stderr}`);
  assert.match(r.stderr, /line\s*3|:3:\d+/i, `no line number in: ${r.stderr}`);
  assert.match(r.stderr, /col(umn)?\s*\d+|:3:\d+/i, `no column in: ${r.stderr}`);
});

test('a schema error: the message names the file and the JSON path', async () => {
  const r = await runExpectingExit({
    routes: { routeSelectionExpression: '$request.body.action', routes: { $default: { handler: 5 } } },
    plugins: ['echo'],
  });
  assertRefused(r);
  assert.ok(r.stderr.includes(r.routesPath), `stderr does not name ${r.routesPath}: ${r.stderr}`);
  assert.ok(r.stderr.includes('/routes/$default/handler'), `stderr does not name /routes/$default/handler: ${r.stderr}`);
});

test('a route naming a handler with no .so: the message names the .so path', async () => {
  const r = await runExpectingExit({
    routes: { routeSelectionExpression: '$request.body.action', routes: { $default: { handler: 'echo' }, missing: { handler: 'nope' } } },
    plugins: ['echo'],
  });
  assertRefused(r);
  assert.ok(r.stderr.includes(path.join(r.handlersDir, 'nope.so')), `stderr does not name ${path.join(r.handlersDir, 'nope.so')}: ${r.stderr}`);
});

test('an instance whose "plugin" has no .so: the message names that .so path', async () => {
  const r = await runExpectingExit({
    routes: {
      routeSelectionExpression: '$request.body.action',
      handlers: { orders: { plugin: 'ghost', config: {} } },
      routes: { $default: { handler: 'orders' } },
    },
    plugins: ['echo'],
  });
  assertRefused(r);
  assert.ok(r.stderr.includes(path.join(r.handlersDir, 'ghost.so')), `stderr: ${r.stderr}`);
});

test('a plugin with the wrong ABI version: the message says ABI version', async () => {
  const r = await runExpectingExit({
    routes: { routeSelectionExpression: '$request.body.action', routes: { $default: { handler: 'badabi' } } },
    plugins: ['badabi'],
  });
  assertRefused(r);
  assert.match(r.stderr, /ABI version/i);
  assert.match(r.stderr, /badabi/);
  assert.match(r.stderr, /99/);
});

test('a .so without wsgw_handler_v1: the message names the symbol', async () => {
  const r = await runExpectingExit({
    routes: { routeSelectionExpression: '$request.body.action', routes: { $default: { handler: 'nosymbol' } } },
    plugins: ['nosymbol'],
  });
  assertRefused(r);
  assert.match(r.stderr, /wsgw_handler_v1/);
  assert.match(r.stderr, /nosymbol/);
});

test('a handler .so that is a symlink loop: the message says it cannot be opened and why, not that it does not exist', async () => {
  const r = await runExpectingExit({
    routes: (dir) => {
      const loop = path.join(dir, 'handlers', 'looped.so');
      fs.symlinkSync('looped.so', loop);  // open() and stat() fail with ELOOP
      return { routeSelectionExpression: '$request.body.action', routes: { $default: { handler: 'looped' } } };
    },
  });
  assertRefused(r);
  assert.match(r.stderr, /looped\.so cannot be opened: Too many levels of symbolic links/);
  assert.doesNotMatch(r.stderr, /does not exist/);
});

test('a routes.json that does not exist: the message names it', async () => {
  const r = await runExpectingExit({ routes: undefined, plugins: ['echo'] });
  assertRefused(r);
  assert.ok(r.stderr.includes(r.routesPath), `stderr: ${r.stderr}`);
});
