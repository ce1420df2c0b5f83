// Operations: GET /metrics after a scripted session has exact counter values (AWS's metrics under
// Prometheus names), the access log has one parseable line per connect, message and disconnect with AWS's
// $context field names (to a file, to stdout by default, or off), and /healthz and /readyz answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Gateway, defaultRoutes, errorFrameRegex, makeTempDir, openExpectingRefusal, rawHttp, sleep, waitFor } from './harness.mjs';

const TOKEN = 'ops-token-0123456789';
let gw;
let accessLogPath;
const received = { bytes: 0 };  // every frame the clients got, to compare with wsgw_sent_bytes_total

const routes = (dir) => ({
  routeSelectionExpression: '$request.body.action',
  handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
  routes: {
    $connect: { handler: 'probe' },
    $disconnect: { handler: 'probe' },
    echo: { handler: 'probe', routeResponse: true },
    fail: { handler: 'probe', routeResponse: true },
    sleep: { handler: 'probe', routeResponse: true, timeoutMs: 200 },
  }, // no $default: an unknown action is AWS's Forbidden, a ClientError
});

async function metrics(target = gw, token = TOKEN) {
  const res = await fetch(`${target.managementUrl}/metrics`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const values = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    values.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return values;
}

function track(client) {
  client.ws.on('message', (data) => { received.bytes += Buffer.from(data).length; });
  return client;
}

before(async () => {
  const dir = makeTempDir('wsgw-ops-');
  accessLogPath = path.join(dir, 'access.log');
  const creds = path.join(dir, 'credentials.json');
  fs.writeFileSync(creds, JSON.stringify({ tokens: [TOKEN] }));
  gw = await Gateway.start({ dir, routes, plugins: ['probe'], extraArgs: ['--access-log', accessLogPath, '--management-credentials', creds] });
});

after(async () => {
  await gw?.stop();
});

test('after a scripted session, /metrics has the exact counts per route', async () => {
  const headers = { 'User-Agent': 'ops-test/1.0' };
  const a = track(await Client.open(`${gw.url}/?who=a`, { headers }));
  const b = track(await Client.open(`${gw.url}/?who=b`, { headers }));
  assert.equal((await openExpectingRefusal(`${gw.url}/?status=403`, { headers })).status, 403); // the handler refuses
  assert.equal((await rawHttp(gw.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')).status, 426); // the gateway refuses
  let sentBytes = 0;
  const send = (c, text) => { sentBytes += Buffer.byteLength(text); c.send(text); };
  for (let i = 0; i < 3; i++) {
    const body = JSON.stringify({ action: 'echo', n: i });
    send(a, body);
    assert.equal(await a.nextText(), body);
  }
  send(a, '{"action":"fail"}');
  assert.match(await a.nextText(), errorFrameRegex('Internal server error'));
  send(a, '{"action":"nosuch"}');
  assert.match(await a.nextText(), errorFrameRegex('Forbidden'));
  send(a, '{"action":"sleep","ms":500}');
  assert.match(await a.nextText(), errorFrameRegex('Endpoint request timed out'));
  send(b, '{"action":"echo","from":"b"}');
  assert.equal(await b.nextText(), '{"action":"echo","from":"b"}');
  const list = await (await fetch(`${gw.managementUrl}/@connections`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json();
  for (const item of list.items) {
    const res = await fetch(`${gw.managementUrl}/@connections/${item.connectionId}`, { method: 'POST', body: 'pushed', headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
  }
  assert.equal(await a.nextText(), 'pushed');
  assert.equal(await b.nextText(), 'pushed');
  // The sleeping handler returns (500 ms after the message, 300 ms after its timeout): its late result is
  // dropped, its integration latency observed and its access line written. Wait for both.
  const accessLines = () => (fs.existsSync(accessLogPath) ? fs.readFileSync(accessLogPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
  await waitFor(async () => (await metrics()).get('wsgw_integration_latency_seconds_count{route="sleep"}') === 1 &&
    accessLines().some((l) => l.eventType === 'MESSAGE' && l.routeKey === 'sleep'), { timeoutMs: 5000, what: 'the late result of the sleeping handler' });

  const expect = {
    'wsgw_connections': 2,
    'wsgw_connect_count_total{route="$connect"}': 3,
    'wsgw_integration_error_total{route="$connect"}': 1,
    'wsgw_client_error_total{route="$connect"}': 1,
    'wsgw_message_count_total{route="echo",direction="in"}': 4,
    'wsgw_message_count_total{route="echo",direction="out"}': 4,
    'wsgw_message_count_total{route="fail",direction="in"}': 1,
    'wsgw_message_count_total{route="fail",direction="out"}': 1,
    'wsgw_integration_error_total{route="fail"}': 1,
    'wsgw_message_count_total{route="$default",direction="in"}': 1,
    'wsgw_message_count_total{route="$default",direction="out"}': 1,
    'wsgw_client_error_total{route="$default"}': 1,
    'wsgw_message_count_total{route="sleep",direction="in"}': 1,
    'wsgw_message_count_total{route="sleep",direction="out"}': 1,
    'wsgw_execution_error_total{route="sleep"}': 1,
    'wsgw_integration_error_total{route="sleep"}': 0,
    'wsgw_message_count_total{route="@connections",direction="out"}': 2,
    'wsgw_integration_latency_seconds_count{route="echo"}': 4,
    'wsgw_latency_seconds_count{route="echo"}': 4,
    'wsgw_integration_latency_seconds_count{route="$connect"}': 3,
    'wsgw_integration_latency_seconds_bucket{route="sleep",le="0.5"}': 0,
    'wsgw_integration_latency_seconds_bucket{route="sleep",le="1"}': 1,
    'wsgw_received_bytes_total': sentBytes,
    'wsgw_sent_bytes_total': received.bytes,
    'wsgw_reloads_total': 0,
    'wsgw_reload_failures_total': 0,
  };
  // A worker counts a reply (MessageCount out, the end-to-end latency) just after queueing it, and the
  // network thread counts sent bytes just after writing them: the client can have them first. Wait until
  // every count has its value (a wrong count never gets there), then compare them one by one.
  const m = await waitFor(async () => {
    const now = await metrics();
    return Object.entries(expect).every(([name, value]) => now.get(name) === value) ? now : null;
  }, { what: 'the counters of the scripted session' }).catch(async () => metrics());
  for (const [name, value] of Object.entries(expect)) assert.equal(m.get(name), value, name);
  assert.ok(m.has('wsgw_table_write_queue_depth'));

  await a.close();
  await b.close();
  await waitFor(async () => (await metrics()).get('wsgw_connections') === 0, { what: 'no live connections' });
});

test('the access log has one line per connect, message and disconnect, with AWS $context names', async () => {
  const c = await Client.open(gw.url, { headers: { 'User-Agent': 'ops-test/2.0' } });
  c.send('{"action":"fail"}');
  const frame = await c.nextText();
  const requestId = errorFrameRegex('Internal server error').exec(frame)[2];
  await c.close();
  const lines = await waitFor(() => {
    const all = fs.existsSync(accessLogPath) ? fs.readFileSync(accessLogPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
    return all.some((l) => l.eventType === 'DISCONNECT' && l.userAgent === 'ops-test/2.0') && all;
  }, { timeoutMs: 5000, what: 'the access lines of the second session' });
  for (const l of lines) {
    for (const field of ['requestId', 'connectionId', 'eventType', 'routeKey', 'status', 'integrationLatency', 'sourceIp', 'userAgent', 'error', 'requestTime', 'requestTimeEpoch'])
      assert.ok(field in l, `${field} in ${JSON.stringify(l)}`);
    assert.equal(l.msg, 'access');
    assert.equal(l.level, 'info');
  }
  const first = lines.filter((l) => l.userAgent === 'ops-test/1.0');
  const connects = first.filter((l) => l.eventType === 'CONNECT').map((l) => l.status).sort();
  assert.deepEqual(connects, [200, 200, 403]);
  const refused = lines.find((l) => l.eventType === 'CONNECT' && l.status === 426);
  assert.ok(refused && refused.integrationLatency === null && refused.error.length > 0, 'the gateway\'s own refusal is logged with its reason');
  const messages = first.filter((l) => l.eventType === 'MESSAGE').map((l) => `${l.routeKey}:${l.status}`).sort();
  assert.deepEqual(messages, ['$default:403', 'echo:200', 'echo:200', 'echo:200', 'echo:200', 'fail:500', 'sleep:504']);
  assert.equal(first.filter((l) => l.eventType === 'DISCONNECT').length, 2);
  const second = lines.filter((l) => l.userAgent === 'ops-test/2.0');
  const fail = second.find((l) => l.eventType === 'MESSAGE');
  assert.equal(fail.requestId, requestId, 'the access line and the error frame share the requestId');
  assert.equal(fail.status, 500);
  assert.match(fail.error, /handler returned 1/);
  assert.equal(fail.sourceIp, '127.0.0.1');
  assert.ok(fail.messageId);
  const disconnect = second.find((l) => l.eventType === 'DISCONNECT');
  assert.equal(disconnect.disconnectStatusCode, 1005);
  assert.equal(disconnect.connectionId, fail.connectionId);
});

test('/healthz and /readyz answer without credentials; /metrics, /@routes and /@info need them', async () => {
  const health = await fetch(`${gw.managementUrl}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'alive' });
  const ready = await fetch(`${gw.managementUrl}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { status: 'ready', problems: [] });
  for (const p of ['/metrics', '/@routes', '/@info']) {
    const res = await fetch(`${gw.managementUrl}${p}`);
    assert.equal(res.status, 403, p);
    assert.equal(res.headers.get('x-amzn-errortype'), 'ForbiddenException');
  }
  const auth = { headers: { Authorization: `Bearer ${TOKEN}` } };
  const table = await (await fetch(`${gw.managementUrl}/@routes`, auth)).json();
  assert.equal(table.routeSelectionExpression, '$request.body.action');
  assert.deepEqual(table.routes.map((r) => r.key).sort(), ['$connect', '$disconnect', 'echo', 'fail', 'sleep']);
  assert.equal(table.routes.find((r) => r.key === 'sleep').timeoutMs, 200);
  const info = await (await fetch(`${gw.managementUrl}/@info`, auth)).json();
  assert.equal(info.publicPort, gw.port);
  assert.deepEqual(info.handlers, ['probe']);
  const unknown = await fetch(`${gw.managementUrl}/nope`);
  assert.equal(unknown.status, 404);
  assert.match((await unknown.json()).message, /\/metrics, \/healthz, \/readyz and \/console/);
});

test('access logs go to stdout by default and nowhere with --access-log off', async () => {
  for (const [extraArgs, expected] of [[[], 3], [['--access-log', 'off'], 0]]) {
    const g = await Gateway.start({ routes: defaultRoutes(), plugins: ['echo', 'chat'], extraArgs });
    try {
      const c = await Client.open(g.url);
      assert.equal(await c.request('hi'), 'hi');
      await c.close();
      if (expected) await g.waitForLog((l) => l.msg === 'access' && l.eventType === 'DISCONNECT', 5000, 'the disconnect access line');
      else await sleep(300);  // a check that nothing is logged: time for a line that must not come
      assert.equal(g.lines.filter((l) => l.msg === 'access').length, expected, JSON.stringify(extraArgs));
    } finally {
      await g.stop();
    }
  }
});
