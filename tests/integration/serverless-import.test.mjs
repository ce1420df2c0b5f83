// `wsgw import serverless.yml` (docs/lambda.md "Importing a Serverless Framework project"): a
// project with $connect, $disconnect, $default and a two-way custom route is imported by the real binary,
// the printed routes.json is written beside serverless.yml, and the real gateway serves it with the
// project's own Node handler file; bad input is refused with exit 2 and file:line:column.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import { Gateway, Client, WSGW_BIN, makeTempDir, openExpectingRefusal } from './harness.mjs';

const gateways = [];
after(async () => {
  for (const gw of gateways) await gw.stop().catch(() => {});
});

const SERVERLESS_YML = `service: ws-chat
frameworkVersion: '3'
provider:
  name: aws
  runtime: nodejs20.x
  stage: \${opt:stage, 'beta'}
  websocketsApiRouteSelectionExpression: $request.body.action
  environment:
    GREETING: hello from \${self:service}
functions:
  connectHandler:
    handler: src/handler.connect
    events:
      - websocket:
          route: $connect
  disconnectHandler:
    handler: src/handler.disconnect
    events:
      - websocket: $disconnect
  defaultHandler:
    handler: src/handler.fallback
    events:
      - websocket:
          route: $default
          routeResponseSelectionExpression: $default
  pingHandler:
    handler: src/handler.ping
    timeout: 10
    environment:
      PONG: pong
    events:
      - websocket:
          route: ping
          routeResponseSelectionExpression: $default
  nightly:
    handler: src/handler.nightly
    events:
      - schedule: rate(1 day)
`;

// CommonJS, callback and async styles, as Serverless projects write them.
const HANDLER_JS = `'use strict';
module.exports.connect = async (event) => {
  if (!(event.queryStringParameters || {}).name) return { statusCode: 401, body: 'name?' };
  return { statusCode: 200 };
};
module.exports.disconnect = (event, context, callback) => {
  console.log('disconnected ' + event.requestContext.connectionId);
  callback(null, { statusCode: 200 });
};
module.exports.fallback = async (event) => ({ statusCode: 200, body: 'fallback got ' + event.body });
module.exports.ping = async (event) => ({
  statusCode: 200,
  body: JSON.stringify({ pong: process.env.PONG, greeting: process.env.GREETING, stage: event.requestContext.stage }),
});
module.exports.nightly = async () => 'never a route';
`;

function runImport(args, cwd) {
  return spawnSync(WSGW_BIN, ['import', ...args], { cwd, encoding: 'utf8', timeout: 20000 });
}

test('a serverless.yml imported and served: $connect (401 refusal), $default and a two-way custom route, $disconnect', async () => {
  const project = makeTempDir('wsgw-sls-');
  fs.mkdirSync(path.join(project, 'src'));
  fs.writeFileSync(path.join(project, 'src', 'handler.js'), HANDLER_JS);
  fs.writeFileSync(path.join(project, 'serverless.yml'), SERVERLESS_YML);

  const imported = runImport(['serverless.yml'], project);
  assert.equal(imported.status, 0, imported.stderr);
  assert.match(imported.stderr, /warning: serverless\.yml:\d+:\d+: function 'nightly' has no websocket event: left out/);
  const routes = JSON.parse(imported.stdout);
  assert.equal(routes.stage, 'beta');
  assert.deepEqual(Object.keys(routes.routes).sort(), ['$connect', '$default', '$disconnect', 'ping']);
  assert.deepEqual(routes.routes.ping, { handler: 'pingHandler', routeResponse: true, timeoutMs: 10000 });
  assert.deepEqual(routes.handlers.pingHandler.lambda, {
    runtime: 'nodejs', handler: 'src/handler.ping', directory: '.', environment: { GREETING: 'hello from ws-chat', PONG: 'pong' },
  });

  // Served as printed, from routes.json beside serverless.yml.
  const gw = await Gateway.start({ dir: project, routes: imported.stdout });
  gateways.push(gw);
  assert.equal((await openExpectingRefusal(gw.url)).status, 401);
  const c = await Client.open(`${gw.url}/?name=ann`);
  assert.equal(await c.request('just text'), 'fallback got just text');
  const pong = JSON.parse(await c.request(JSON.stringify({ action: 'ping' })));
  assert.deepEqual(pong, { pong: 'pong', greeting: 'hello from ws-chat', stage: 'beta' });
  await c.close();
  await gw.waitForLog((l) => l.function === 'disconnectHandler' && /^disconnected /.test(l.msg ?? ''), 10000, "the $disconnect function's line");
});

test('wsgw import: a missing file, not a regular file, over 4 MiB, bad YAML and an unsupported runtime exit 2 with where and what', () => {
  const dir = makeTempDir('wsgw-sls-bad-');
  const missing = runImport(['nope.yml'], dir);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /wsgw import: cannot read nope\.yml: No such file or directory/);
  assert.equal(missing.stdout, '');

  fs.writeFileSync(path.join(dir, 'bad.yml'), 'functions:\n  f: [unclosed\n');
  const bad = runImport(['bad.yml'], dir);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^wsgw import: bad\.yml:\d+:\d+: not valid YAML/);

  fs.writeFileSync(path.join(dir, 'java.yml'), 'provider:\n  runtime: java17\nfunctions:\n  f:\n    handler: a.b\n    events:\n      - websocket: $default\n');
  const java = runImport(['java.yml'], dir);
  assert.equal(java.status, 2);
  assert.match(java.stderr, /java\.yml:2:12: runtime 'java17' of functions\.f: .*"command"/);

  // Only a regular file of at most 4 MiB is read (before: /dev/zero was read until memory ran out).
  const device = runImport(['/dev/zero'], dir);
  assert.equal(device.status, 2, `${device.error ?? ''} ${device.signal ?? ''}`);
  assert.match(device.stderr, /^wsgw import: \/dev\/zero is a character device, not a regular file/);
  fs.writeFileSync(path.join(dir, 'big.yml'), `service: big\n${'#'.repeat(5 << 20)}\n`);
  const big = runImport(['big.yml'], dir);
  assert.equal(big.status, 2);
  assert.match(big.stderr, /^wsgw import: big\.yml is larger than 4 MiB/);

  const usage = runImport([], dir);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /usage: wsgw import serverless\.yml/);
});
