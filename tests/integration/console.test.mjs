// The test console at /console, driven in a real headless Chromium (Debian's chromium, driven by
// playwright-core): connect with query parameters, send text and JSON, see the echo, see this connection
// listed, push to it from the page, read the route table and counters, close it. A screenshot is saved
// in the build directory for people; the assertions are what pass or fail.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Gateway, TEST_PLUGINS_DIR, eventsOf, makeTempDir, probeRoutes, waitFor } from './harness.mjs';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (err) {
  throw new Error(`the console test needs playwright-core: run \`npm ci --prefix tests/integration\` (${err.message})`);
}
const CHROMIUM = process.env.WSGW_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.WSGW_SCREENSHOT_DIR ?? TEST_PLUGINS_DIR;

let gw;
let browser;
let page;

before(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: tools/install-deps installs Debian's chromium`);
  gw = await Gateway.start({ routes: (dir) => ({ ...probeRoutes({ routes: ['echo'] })(dir), subprotocols: ['json'] }), plugins: ['probe'] });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10000);
  // What the page met, printed if a test fails: failed requests and the page's own console errors.
  page.on('requestfailed', (r) => pageTrouble.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on('console', (m) => { if (m.type() === 'error') pageTrouble.push(`console: ${m.text()}`); });
});

const pageTrouble = [];

after(async () => {
  await browser?.close();
  await gw?.stop();
});

const logTexts = (kind) => page.$$eval(`#log .${kind}`, (els) => els.map((e) => e.textContent));

// Polled on a timer, not per animation frame: a loaded machine's headless Chromium may hold frames back (an
// echo and a push each timed out at 10 s under CI's ASan stage, never here). On failure it says what the
// log shows instead.
async function waitForLog(kind, needle) {
  await page.waitForFunction(([k, n]) => [...document.querySelectorAll(`#log .${k}`)].some((e) => e.textContent.includes(n)), [kind, needle],
    { polling: 100, timeout: 30000 }).catch(async (err) => {
    const shown = await page.$$eval('#log > div', (els) => els.slice(-10).map((e) => e.textContent)).catch(() => []);
    throw new Error(`${err.message}\nwaiting for "${needle}" (${kind}); the log's last lines: ${JSON.stringify(shown)}; page: ${JSON.stringify(pageTrouble)}`);
  });
}

test('the console connects with chosen query parameters and subprotocol, sends text and JSON and shows the echoes', async () => {
  await page.goto(`${gw.managementUrl}/console`);
  await page.waitForFunction(() => document.getElementById('url').value.startsWith('ws://'));
  assert.equal(await page.inputValue('#url'), `ws://127.0.0.1:${gw.port}/`);
  assert.match(await page.textContent('#info'), /handlers probe/);
  await page.fill('#query', 'room=blue&user=ada');
  await page.fill('#subprotocol', 'json');
  await page.click('#connect');
  await page.waitForSelector('#status.open');
  assert.equal(await page.textContent('#status'), 'open (json)', 'the subprotocol the gateway chose');

  await page.fill('#message', 'hello from the console');
  await page.click('#send-text');
  await waitForLog('in', 'hello from the console');
  await page.fill('#message', '{ "action": "echo",\n  "n": 1 }');
  await page.click('#send-json');
  await waitForLog('in', '{"action":"echo","n":1}');
  assert.ok((await logTexts('out')).some((t) => t.includes('{"action":"echo","n":1}')), 'the compacted JSON frame is shown as sent');
  await page.fill('#message', '{not json');
  await page.click('#send-json');
  assert.match(await page.textContent('#send-error'), /^not JSON/);
  // Every line has a timestamp.
  for (const t of await page.$$eval('#log > div .t', (els) => els.map((e) => e.textContent))) assert.match(t, /^\d\d:\d\d:\d\d\.\d{3} $/);
});

test('the page lists its own connection, pushes to it, and the gateway saw the query parameters', async () => {
  await page.waitForSelector('#connections tr.mine');
  const id = await page.getAttribute('#connections tr.mine', 'data-id');
  assert.match(id, /^[A-Za-z0-9_-]{22}$/);
  const connect = eventsOf(gw.eventsPath, id, 'CONNECT');
  assert.equal(connect.length, 1, 'the listed connection is the one the page opened');
  assert.deepEqual(connect[0].queryStringParameters, { room: 'blue', user: 'ada' });

  await page.fill(`#connections tr[data-id="${id}"] .post-data`, 'pushed from the page');
  await page.click(`#connections tr[data-id="${id}"] button.post`);
  await waitForLog('in', 'pushed from the page');
  await page.click(`#connections tr[data-id="${id}"] button.details`);
  // The page shows the answer, or the error it got instead: a failure says which. Polled on a timer, not
  // per animation frame (which a loaded machine's headless Chromium may hold back), and with more time: it
  // timed out twice on CI under load, never here.
  await page.waitForFunction(() => document.getElementById('details').textContent.includes('sourceIp') ||
    document.getElementById('connections-error').textContent !== '', undefined, { polling: 100, timeout: 30000 }).catch((err) => {
    const management = gw.lines.filter((l) => /management|refused|timeout/i.test(l.msg ?? '')).slice(-10);
    throw new Error(`${err.message}\npage: ${JSON.stringify(pageTrouble)}\ngateway: ${JSON.stringify(management)}`);
  });
  assert.equal(await page.textContent('#connections-error'), '', 'the page got an error for its GET');
  assert.equal(JSON.parse(await page.textContent('#details')).identity.sourceIp, '127.0.0.1');
});

// The list refreshes every 2 s; what a user types into a row must survive that (a rebuilt table wiped it,
// and a click just after a refresh posted an empty message: CI's ASan stage failed on that once).
test('text typed into a row survives the list refreshing under it, and is what gets posted', async () => {
  const id = await page.getAttribute('#connections tr.mine', 'data-id');
  const input = `#connections tr[data-id="${id}"] .post-data`;
  await page.fill(input, 'typed before a refresh');
  // Two refreshes at least: the timer's (every 2 s) and one asked for with the Refresh button. Each is seen
  // to have updated the row: a stale value put into its source-address cell is rewritten by the refresh.
  const sourceCell = `#connections tr[data-id="${id}"] td:nth-child(4)`;
  const markStale = () => page.$eval(sourceCell, (td) => { td.textContent = 'stale'; });
  const refreshed = () => page.waitForFunction((sel) => document.querySelector(sel)?.textContent === '127.0.0.1', sourceCell, { polling: 100, timeout: 10000 });
  await markStale();
  await refreshed();  // by the timer
  await markStale();
  await Promise.all([page.waitForResponse((r) => r.url().includes('/@connections?')), page.click('#refresh')]);
  await refreshed();  // by the button (or the timer, if it came first: a refresh either way)
  assert.equal(await page.inputValue(input), 'typed before a refresh', 'the refresh kept the text');
  await page.click(`#connections tr[data-id="${id}"] button.post`);
  await waitForLog('in', 'typed before a refresh');
});

test('the route table and live counters are shown', async () => {
  await page.waitForFunction(() => document.querySelectorAll('#routes tbody tr').length === 4);
  const routes = await page.$$eval('#routes tbody tr td:first-child', (tds) => tds.map((td) => td.textContent).sort());
  assert.deepEqual(routes, ['$connect', '$default', '$disconnect', 'echo']);
  assert.match(await page.textContent('#expression'), /\$request\.body\.action/);
  // The counters refresh every 2 s: the $default route has seen the text frame and the invalid-JSON-free sends.
  await page.waitForFunction(() => {
    const row = document.querySelector('#counters tr[data-route="$default"]');
    return row && Number(row.children[2].textContent) >= 1;
  });
  await page.waitForFunction(() => /live connections 1\b/.test(document.getElementById('gauges').textContent));
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const shot = path.join(SCREENSHOT_DIR, 'console.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 10000, `screenshot saved at ${shot}`);
});

test('closing the connection from the page runs its $disconnect and empties the list', async () => {
  const id = await page.getAttribute('#connections tr.mine', 'data-id');
  await page.click(`#connections tr[data-id="${id}"] button.close`);
  await page.waitForSelector('#status.closed');
  assert.match(await page.textContent('#status'), /closed \(1000/);
  await waitFor(() => eventsOf(gw.eventsPath, id, 'DISCONNECT').length === 1, { what: 'the $disconnect of the closed connection' });
  await page.waitForFunction(() => document.querySelectorAll('#connections tbody tr').length === 0);
});

// A browser's TLS (Chromium's BoringSSL) against TLS carried on the connection's own descriptor: the
// console page over https:// opens wss://, a 100 KB message crosses in many records both ways, the
// gateway saw the connection, and the page's close is a clean 1000.
test('Chromium over https:// and wss://: the console connects, a 100 KB message echoes intact, the close is clean', async () => {
  const dir = makeTempDir('wsgw-console-tls-');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile,
    '-out', certFile, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const g = await Gateway.start({
    dir, routes: probeRoutes({ routes: ['echo'] }), plugins: ['probe'],
    extraArgs: ['--tls-cert', certFile, '--tls-key', keyFile, '--management-tls-cert', certFile, '--management-tls-key', keyFile],
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true });  // a self-signed certificate made above
  try {
    const p = await context.newPage();
    p.setDefaultTimeout(15000);
    await p.goto(`${g.managementUrl.replace('http://', 'https://')}/console`);
    await p.waitForFunction(() => document.getElementById('url').value.startsWith('wss://'));
    assert.equal(await p.inputValue('#url'), `wss://127.0.0.1:${g.port}/`);
    await p.click('#connect');
    await p.waitForSelector('#status.open');
    const big = 'w'.repeat(100 * 1024);  // under the default maxMessageBytes (128 KiB)
    await p.fill('#message', big);
    await p.click('#send-text');
    await p.waitForFunction((n) => [...document.querySelectorAll('#log .in')].some((e) => e.textContent.length >= n && e.textContent.includes('w'.repeat(n))),
      big.length, { polling: 100, timeout: 15000 });
    await p.waitForSelector('#connections tr.mine');
    const id = await p.getAttribute('#connections tr.mine', 'data-id');
    assert.equal(eventsOf(g.eventsPath, id, 'CONNECT').length, 1, 'the gateway ran $connect for the browser');
    await p.click('#disconnect');
    await p.waitForSelector('#status.closed');
    assert.match(await p.textContent('#status'), /closed \(1000/);
    await waitFor(() => eventsOf(g.eventsPath, id, 'DISCONNECT').length === 1, { what: 'the $disconnect of the browser connection' });
  } finally {
    await context.close();
    await g.stop();
  }
});
