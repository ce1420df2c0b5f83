// The README's five-minute tour, run for real: the C++ and C handlers printed in README.md are extracted,
// compiled with the commands the README gives, dropped into a handlers directory next to the samples, and
// routed by the default routes.json plus the two routes the README adds. If the README rots, this fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Gateway, Client, REPO_ROOT, makeTempDir, prepareDir } from './harness.mjs';

// The first fenced block of `lang` after `marker` in README.md.
function readmeBlock(marker, lang) {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf(marker);
  assert.ok(at >= 0, `README.md has no "${marker}"`);
  const fence = '```' + lang + '\n';
  const start = readme.indexOf(fence, at);
  assert.ok(start >= 0, `README.md has no \`\`\`${lang} block after "${marker}"`);
  const end = readme.indexOf('\n```', start + fence.length);
  return readme.slice(start + fence.length, end + 1);
}

let gw;

before(async () => {
  const dir = makeTempDir('wsgw-tour-');
  const layout = prepareDir({ dir, plugins: ['echo', 'chat'] });
  const include = path.join(REPO_ROOT, 'gateway', 'include');
  fs.writeFileSync(path.join(dir, 'hello.cpp'), readmeBlock('**3. Write a handler in C++.**', 'cpp'));
  fs.writeFileSync(path.join(dir, 'shout.c'), readmeBlock('**4. Or in C.**', 'c'));
  execFileSync('g++', ['-std=c++20', '-O2', '-shared', '-fPIC', '-Wall', '-Wextra', '-Werror', '-I', include,
    path.join(dir, 'hello.cpp'), '-o', path.join(layout.handlersDir, 'hello.so')], { stdio: 'pipe' });
  execFileSync('cc', ['-std=c11', '-O2', '-shared', '-fPIC', '-Wall', '-Wextra', '-Werror', '-I', include,
    path.join(dir, 'shout.c'), '-o', path.join(layout.handlersDir, 'shout.so')], { stdio: 'pipe' });
  const routes = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'routes.json'), 'utf8'));
  routes.routes.ping = { handler: 'echo', routeResponse: true };
  routes.routes.hello = { handler: 'hello', routeResponse: true };
  routes.routes.shout = { handler: 'shout' };
  gw = await Gateway.start({ dir, routes, plugins: ['echo', 'chat'] });
});

after(async () => {
  await gw?.stop();
});

test('step 1: plain text echoes and sendmessage reaches every client', async () => {
  const a = await Client.open(gw.url);
  const b = await Client.open(gw.url);
  assert.equal(await a.request('hello'), 'hello');
  a.send(JSON.stringify({ action: 'sendmessage', data: 'hi all' }));
  assert.equal(await a.nextText(), 'hi all');
  assert.equal(await b.nextText(), 'hi all');
  await a.close(1000);
  await b.close(1000);
});

test('step 2: the custom route "ping" answers', async () => {
  const c = await Client.open(gw.url);
  assert.equal(await c.request('{"action":"ping"}'), '{"action":"ping"}');
  await c.close(1000);
});

test('step 3: the C++ handler from the README answers through its route', async () => {
  const c = await Client.open(gw.url);
  assert.equal(await c.request('{"action":"hello"}'), 'hello, {"action":"hello"}');
  await c.close(1000);
});

test('step 4: the C handler from the README pushes to the caller with post_to_connection', async () => {
  const c = await Client.open(gw.url);
  assert.equal(await c.request('{"action":"shout","text":"quiet"}'), '{"ACTION":"SHOUT","TEXT":"QUIET"}');
  await c.close(1000);
});
