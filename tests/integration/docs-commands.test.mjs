// Every shell command shown in docs/*.md, run for real (README.md's tour is tour.test.mjs's). The shell
// blocks (```sh, ```bash, ```shell, ```console, and unlabelled blocks whose first line is a "$ " prompt)
// are extracted from the docs; each must have a runner below, keyed by the doc and the block's text, or be
// one of the few listed exceptions with the reason it cannot run in CI. A doc that gains a command no
// runner covers fails the first test, and so does a runner whose command a doc no longer shows.
//
// Commands run as written, through /bin/sh, in a scratch "checkout": a temp dir whose gateway/ and
// handlers/ are the repository's (symlinks), whose build/wsgw is the binary under test, with `wsgw` and
// `wsgw-load` on PATH. The one change made to a command: a gateway it starts listens on free loopback
// ports (--listen 127.0.0.1:0 --management-listen 127.0.0.1:0 appended, and PORT in a later command is the
// port it got), because :8080 may be taken on a shared machine.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, REPO_ROOT, WSGW_BIN, makeTempDir, waitFor, withTimeout } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BENCH_DIR = process.env.WSGW_BENCH_DIR ?? path.join(path.dirname(WSGW_BIN), 'tools', 'bench');

// ---- extraction --------------------------------------------------------------------------------------

// Every shell block of a markdown text: [{ line, text }].
export function shellBlocks(markdown) {
  const blocks = [];
  const fence = /^```([A-Za-z]*)[^\n]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (let m; (m = fence.exec(markdown));) {
    const [, lang, text] = m;
    const isShell = ['sh', 'bash', 'shell', 'console'].includes(lang) || (lang === '' && text.startsWith('$ '));
    if (isShell) blocks.push({ line: markdown.slice(0, m.index).split('\n').length, text });
  }
  return blocks;
}

function docsBlocks() {
  const docsDir = path.join(REPO_ROOT, 'docs');
  const found = [];
  for (const name of fs.readdirSync(docsDir).filter((n) => n.endsWith('.md')).sort()) {
    for (const b of shellBlocks(fs.readFileSync(path.join(docsDir, name), 'utf8'))) found.push({ doc: `docs/${name}`, ...b });
  }
  return found;
}

// The first line of a block that is a command (not a comment, not a "> "/"< " transcript line).
const commandLines = (text) => text.split('\n').filter((l) => l.trim() && !/^\s*(#|> |< )/.test(l));

// ---- the scratch checkout ----------------------------------------------------------------------------

const children = [];
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function scratchCheckout() {
  const dir = makeTempDir('wsgw-docs-');
  fs.symlinkSync(path.join(REPO_ROOT, 'gateway'), path.join(dir, 'gateway'));
  fs.symlinkSync(path.join(REPO_ROOT, 'handlers'), path.join(dir, 'handlers'));
  fs.mkdirSync(path.join(dir, 'build', 'handlers'), { recursive: true });
  fs.symlinkSync(WSGW_BIN, path.join(dir, 'build', 'wsgw'));
  // npx runs a package from the project's node_modules, here the tests' (wscat), instead of downloading it.
  fs.symlinkSync(path.join(here, 'node_modules'), path.join(dir, 'node_modules'));
  const bin = path.join(dir, '.bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(WSGW_BIN, path.join(bin, 'wsgw'));
  fs.symlinkSync(path.join(BENCH_DIR, 'wsgw-load'), path.join(bin, 'wsgw-load'));
  const env = { ...process.env, PATH: `${bin}:${path.join(here, 'node_modules', '.bin')}:${process.env.PATH}` };
  delete env.NODE_TEST_CONTEXT;  // node:test's own marker: a node program started with it (wscat) is not itself
  return { dir, env };
}

// Runs one command line to its end; returns its stdout.
function run(line, { dir, env }) {
  try {
    return execFileSync('/bin/sh', ['-c', line], { cwd: dir, env, stdio: 'pipe', encoding: 'utf8', timeout: 120000 });
  } catch (err) {
    throw new Error(`\`${line}\` failed in ${dir}: ${err.message}\n${err.stderr ?? ''}`);
  }
}

// Starts a gateway command (the doc's line, on free loopback ports) and resolves with the process and the
// port of its "listening" line.
async function startGateway(line, { dir, env }) {
  const command = `exec ${line.replace(/\s*&\s*$/, '')} --listen 127.0.0.1:0 --management-listen 127.0.0.1:0`;
  const child = spawn('/bin/sh', ['-c', command], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c) => { stderr += c; });
  const listening = new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (text) => {
      try {
        const l = JSON.parse(text);
        if (l.msg === 'listening') resolve(l);
      } catch { /* not a log line */ }
    });
    child.on('exit', (code) => reject(new Error(`\`${line}\` exited (${code}) before listening: ${stderr}`)));
  });
  const l = await withTimeout(listening, 30000, `\`${line}\` to listen`);
  return { child, port: Number(String(l.address).split(':').pop()), management: String(l.management) };
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGTERM');
  await withTimeout(exited, 15000, 'the gateway to stop');
}

function readmeBlock(marker, lang) {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('```' + lang + '\n', readme.indexOf(marker));
  assert.ok(readme.indexOf(marker) >= 0 && start >= 0, `README.md has no ${lang} block after "${marker}"`);
  return readme.slice(start + lang.length + 4, readme.indexOf('\n```', start + 4) + 1);
}

const exportsHandler = (so) => execFileSync('nm', ['-D', '--defined-only', so], { encoding: 'utf8' }).includes(' wsgw_handler_v1');

// ---- what runs each block ----------------------------------------------------------------------------

// Keyed by `<doc>\n<block text>`; a runner gets the block's command lines and its whole text.
const runners = new Map();
const exceptions = new Map();
const key = (doc, text) => `${doc}\n${text}`;

runners.set(key('docs/handlers.md', `g++ -std=c++20 -O2 -shared -fPIC -I gateway/include hello.cpp -o build/handlers/hello.so
cc -std=c11 -O2 -shared -fPIC -I gateway/include shout.c -o build/handlers/shout.so
`), async (lines) => {
  const co = scratchCheckout();
  fs.writeFileSync(path.join(co.dir, 'hello.cpp'), readmeBlock('**3. Write a handler in C++.**', 'cpp'));
  fs.writeFileSync(path.join(co.dir, 'shout.c'), readmeBlock('**4. Or in C.**', 'c'));
  for (const line of lines) run(line, co);
  for (const so of ['hello.so', 'shout.so']) assert.ok(exportsHandler(path.join(co.dir, 'build', 'handlers', so)), `${so} exports wsgw_handler_v1`);
});

runners.set(key('docs/handlers.md', `g++ -std=c++20 -O2 -shared -fPIC -I gateway/include handlers/counter/counter.cpp -o build/handlers/counter.so
`), async (lines) => {
  const co = scratchCheckout();
  for (const line of lines) run(line, co);
  const routes = { routeSelectionExpression: '$request.body.action', handlers: { counter: {} },
    routes: { $connect: { handler: 'counter' }, $default: { handler: 'counter', routeResponse: true } } };
  fs.writeFileSync(path.join(co.dir, 'routes.json'), JSON.stringify(routes));
  const { child, port } = await startGateway('./build/wsgw --routes routes.json --handlers build/handlers', co);
  const c = await Client.open(`ws://127.0.0.1:${port}`);
  assert.deepEqual(JSON.parse(await c.request('5')), { mine: 5, total: 5 }, 'the counter built by the doc\'s command answers');
  await c.close(1000);
  await stop(child);
});

const lambdaChatBlock = `npm install --prefix functions/chat          # @aws-sdk/client-apigatewaymanagementapi
./build/wsgw --routes functions/chat/routes.json
npx wscat -c ws://localhost:8080
> {"action":"sendmessage","data":"hi all"}
< hi all
`;
runners.set(key('docs/lambda.md', lambdaChatBlock), async (lines, text) => {
  const co = scratchCheckout();
  const fnDir = path.join(co.dir, 'functions', 'chat');
  fs.mkdirSync(fnDir, { recursive: true });
  for (const f of ['app.mjs', 'routes.json', 'package.json']) fs.copyFileSync(path.join(REPO_ROOT, 'functions', 'chat', f), path.join(fnDir, f));
  // `npm install` would fetch the SDK from the registry; the tests' node_modules hold the same package
  // (package-lock.json), so the function gets those instead, as lambda-callbacks.test.mjs does.
  assert.match(lines[0], /^npm install --prefix functions\/chat\b/);
  fs.symlinkSync(path.join(here, 'node_modules'), path.join(fnDir, 'node_modules'));
  const { child, port } = await startGateway(lines[1], co);
  const wscatLine = lines[2].replace('ws://localhost:8080', `ws://127.0.0.1:${port}`);
  // wscat shows the doc's transcript ("Connected", "< hi all") only at a terminal: script(1) gives it one.
  const wscat = spawn('script', ['-qfec', wscatLine, '/dev/null'], { cwd: co.dir, env: co.env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(wscat);
  let out = '';
  const said = /^> (.*)$/m.exec(text);  // the transcript's line, typed into wscat once it has connected
  let typed = false;
  wscat.stdout.setEncoding('utf8').on('data', (c) => {
    out += c;
    if (!typed && /Connected/.test(out)) {
      typed = true;
      wscat.stdin.write(`${said[1]}\n`);
    }
  });
  await waitFor(() => typed, { timeoutMs: 20000, what: `wscat to connect; it printed ${JSON.stringify(out)}` });
  await waitFor(() => /< hi all/.test(out), { timeoutMs: 20000, what: `wscat to print "< hi all"; it printed ${JSON.stringify(out)}` });
  wscat.kill('SIGTERM');
  await stop(child);
});

runners.set(key('docs/lambda.md', `cd my-service && wsgw import serverless.yml > routes.json && wsgw --routes routes.json
`), async (lines) => {
  const co = scratchCheckout();
  const service = path.join(co.dir, 'my-service');
  fs.mkdirSync(path.join(service, 'src'), { recursive: true });
  fs.writeFileSync(path.join(service, 'serverless.yml'), `service: my-service
provider:
  name: aws
  runtime: nodejs20.x
functions:
  echo:
    handler: src/handler.echo
    events:
      - websocket:
          route: $default
          routeResponseSelectionExpression: $default
`);
  fs.writeFileSync(path.join(service, 'src', 'handler.mjs'), 'export const echo = async (event) => ({ statusCode: 200, body: event.body });\n');
  // The line chains three commands; the last one is the gateway, which runs until it is stopped.
  const parts = lines[0].split(' && ');
  assert.equal(parts.length, 3);
  run(`${parts[0]} && ${parts[1]}`, co);
  const routes = JSON.parse(fs.readFileSync(path.join(service, 'routes.json'), 'utf8'));
  assert.ok(routes.routes.$default, `the import wrote a $default route: ${JSON.stringify(routes)}`);
  const { child, port } = await startGateway(parts[2], { ...co, dir: service });
  const c = await Client.open(`ws://127.0.0.1:${port}`);
  assert.equal(await c.request('imported', 20000), 'imported');
  await c.close(1000);
  await stop(child);
});

runners.set(key('docs/limits.md', `wsgw --routes routes.json --handlers handlers --db wsgw.db --listen 127.0.0.1:0 \\
     --management-listen 127.0.0.1:0 --access-log off &
# VmRSS from /proc/PID/status 1 s after "listening", then:
wsgw-load --url ws://127.0.0.1:PORT/ --mode idle --connections 2000 --seconds 8 --ready-file ready
# VmRSS again 2 s after wsgw-load wrote \`ready\` (every upgrade done, the connections held)
`), async () => {
  const co = scratchCheckout();
  fs.copyFileSync(path.join(REPO_ROOT, 'routes.json'), path.join(co.dir, 'routes.json'));
  fs.rmSync(path.join(co.dir, 'handlers'));
  fs.symlinkSync(process.env.WSGW_HANDLERS_DIR ?? path.join(path.dirname(WSGW_BIN), 'handlers'), path.join(co.dir, 'handlers'));
  const block = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'limits.md'), 'utf8');
  // The gateway line is the first two lines joined (a backslash continuation); it already asks for free ports.
  const gatewayLine = /^(wsgw --routes[^\n]*)\\\n\s*([^\n]*)&$/m.exec(block);
  assert.ok(gatewayLine, 'limits.md still shows the gateway command');
  const { child, port } = await startGateway(`${gatewayLine[1]} ${gatewayLine[2]}`.replace(/--listen \S+ |--management-listen \S+ /g, ''), co);
  const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]);
  const before = rss();
  const loadLine = /^(wsgw-load [^\n]*)$/m.exec(block)[1].replace('PORT', String(port));
  const load = spawn('/bin/sh', ['-c', `exec ${loadLine}`], { cwd: co.dir, env: co.env, stdio: 'ignore' });
  children.push(load);
  const loadDone = new Promise((resolve) => load.on('exit', resolve));
  await waitFor(() => fs.existsSync(path.join(co.dir, 'ready')), { timeoutMs: 60000, what: 'wsgw-load to write ready' });
  assert.ok(rss() > before, 'the gateway holds more memory with 2000 connections open');
  assert.equal(await withTimeout(loadDone, 60000, 'wsgw-load to finish'), 0, 'wsgw-load exits 0');
  await stop(child);
});

const awsCliBlock = `export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY AWS_DEFAULT_REGION=us-east-1
aws apigatewaymanagementapi post-to-connection --endpoint-url http://127.0.0.1:9001/prod \\
    --connection-id CONNECTION_ID --data 'hello' --cli-binary-format raw-in-base64-out
aws apigatewaymanagementapi get-connection --endpoint-url http://127.0.0.1:9001/prod --connection-id CONNECTION_ID
aws apigatewaymanagementapi delete-connection --endpoint-url http://127.0.0.1:9001/prod --connection-id CONNECTION_ID
`;
runners.set(key('docs/management-api.md', awsCliBlock), async (lines, text) => {
  const co = scratchCheckout();
  // The credentials file the same page shows, for the key pair the commands export.
  const page = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'management-api.md'), 'utf8');
  const creds = /## From the AWS SDK[\s\S]*?```json\n([\s\S]*?)```/.exec(page);
  assert.ok(creds, 'management-api.md still shows the credentials file');
  fs.writeFileSync(path.join(co.dir, 'credentials.json'), creds[1]);
  fs.writeFileSync(path.join(co.dir, 'routes.json'), JSON.stringify({ routeSelectionExpression: '$request.body.action',
    routes: { $default: { handler: 'echo', routeResponse: true } } }));
  const handlers = process.env.WSGW_HANDLERS_DIR ?? path.join(path.dirname(WSGW_BIN), 'handlers');
  const { child, port, management } = await startGateway(
    `./build/wsgw --routes routes.json --handlers ${handlers} --management-credentials credentials.json`, co);
  try {
    const c = await Client.open(`ws://127.0.0.1:${port}`);
    const db = path.join(co.dir, 'data', 'wsgw.db');
    const id = await waitFor(() => {
      try {
        return execFileSync('sqlite3', [db, 'SELECT connection_id FROM connections'], { encoding: 'utf8' }).trim();
      } catch { return ''; }
    }, { what: 'the connection\'s row' });
    // Debian's CLI v2 (tools/install-deps), ahead of any other `aws` on PATH (a v1 from pip has no
    // --cli-binary-format).
    assert.ok(fs.existsSync('/usr/bin/aws'), '/usr/bin/aws is missing: tools/install-deps installs Debian\'s awscli');
    fs.symlinkSync('/usr/bin/aws', path.join(co.dir, '.bin', 'aws'));
    // As written, in one shell (the export carries to the commands); the one change is the address and ID.
    const script = text.replaceAll('127.0.0.1:9001', management).replaceAll('CONNECTION_ID', id);
    const out = execFileSync('/bin/sh', ['-ec', script], { cwd: co.dir, env: { ...co.env, AWS_PAGER: '', HOME: co.dir },
      encoding: 'utf8', timeout: 60000 });
    assert.equal(await c.nextText(), 'hello');
    assert.equal(JSON.parse(out).Identity.SourceIp, '127.0.0.1', 'get-connection printed the connection');
    await c.waitClosed(5000);
  } finally {
    await stop(child);
  }
});

// The exceptions: what cannot run in CI, and why. Keep this list short.
exceptions.set(key('docs/cluster.md', `wsgw --cluster redis://10.0.0.2:6379 --node-id gw-1 --listen :8080   # and gw-2, gw-3 ... on other hosts
`), 'needs other hosts and a Redis server on 10.0.0.2; cluster.test.mjs runs the same flags with three nodes and Redis on 127.0.0.1');
exceptions.set(key('docs/lambda.md', `tools/install-aws-lambda-ric
`), 'tools/test runs it before the tests (it compiles native code for minutes the first time on a machine); lambda-callbacks.test.mjs then runs aws-lambda-ric');
exceptions.set(key('docs/performance.md', `$ tools/bench/isolation-echo.sh build-release 5 2     # echo plugin in-process, then isolated in 2 worker processes
{"isolation":"in-process","mode":"echo",...,"connections":64,"inflight":16,"bodyBytes":91,"seconds":5.00,"messages":439695,"messagesPerSecond":87935,"errors":0,...,"p50us":10822,"p99us":21059}
{"isolation":"process","workers":2,"mode":"echo",...,"messages":84217,"messagesPerSecond":16828,"errors":0,...,"p50us":80281,"p99us":187400}
`), 'a benchmark of a release build (build-release), whose figures mean nothing under the sanitizer builds CI also runs; bench-tools.test.mjs runs the load tools it uses');

// Commands that run but do not yet do what the doc says: reported by node:test as "todo" (shown, not
// failing the suite) with the defect, until the owner's fix makes them pass.
const knownBroken = new Map([
]);

// ---- the tests -------------------------------------------------------------------------------------------

test('every shell block in docs/*.md has a runner here or is a listed exception, and none is stale', () => {
  const blocks = docsBlocks();
  assert.ok(blocks.length >= 5, `found only ${blocks.length} shell blocks in docs/: is the extraction broken?`);
  const shown = new Set(blocks.map((b) => key(b.doc, b.text)));
  const uncovered = blocks.filter((b) => !runners.has(key(b.doc, b.text)) && !exceptions.has(key(b.doc, b.text)));
  assert.deepEqual(uncovered.map((b) => `${b.doc}:${b.line}\n${b.text}`), [],
    'a doc shows a command no test runs: add a runner to tests/integration/docs-commands.test.mjs');
  const stale = [...runners.keys(), ...exceptions.keys()].filter((k) => !shown.has(k));
  assert.deepEqual(stale, [], 'a runner or exception names a command no doc shows any more: update it with the doc');
  assert.ok(exceptions.size <= 3, 'the exceptions stay few');
});

test('the extraction finds sh, console and prompt blocks and skips JSON and plain output', () => {
  const md = '```sh\necho a\n```\n```json\n{}\n```\n```\n$ ls\nout\n```\n```\nplain text\n```\n```console\nwsgw --version\n```\n';
  assert.deepEqual(shellBlocks(md).map((b) => b.text), ['echo a\n', '$ ls\nout\n', 'wsgw --version\n']);
});

for (const { doc, line, text } of docsBlocks()) {
  const runner = runners.get(key(doc, text));
  if (!runner) continue;  // reported by the first test
  const todo = knownBroken.get(key(doc, text));
  test(`${doc}:${line}: ${commandLines(text)[0]}`, todo ? { todo } : {}, async () => {
    await runner(commandLines(text), text);
  });
}
