// Cluster push benchmark, one run: starts redis-server and three wsgw nodes (--cluster) on loopback, then
//   1. POST /@connections through node n1 to connections on n1 (same node) and on n2 (cross node):
//      H keep-alive HTTP clients for S seconds each (pushes/s), then one client with one push in flight
//      (latency: POST sent -> frame received by the WebSocket client, percentiles);
//   2. POST /@broadcast through n1 to N connections spread evenly over the three nodes, R times; the time
//      until the last of the N clients has the frame, and deliveries per second.
// Prints one JSON line per measurement. Run it through cluster-bench.sh, which raises the fd limit.
// usage: node tools/bench/cluster-bench.mjs BUILD_DIR [httpClients=32] [seconds=5] [broadcastConnections=10000] [broadcasts=5]
import { createRequire } from 'node:module';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../tests/integration/package.json'));
const WebSocket = require('ws');

const [build = 'build-release', hc = '32', secs = '5', bc = '10000', bn = '5'] = process.argv.slice(2);
const HC = Number(hc), S = Number(secs), N = Number(bc), R = Number(bn);
const buildDir = path.resolve(build);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch {} });

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function startRedis() {
  const port = await freePort();
  children.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--logfile', ''], { stdio: 'ignore' }));
  for (let i = 0; i < 100; ++i) {
    try { if (execFileSync('redis-cli', ['-p', String(port), 'PING']).toString().trim() === 'PONG') return port; } catch {}
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}

async function startNode(id, redisPort) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-cluster-bench-'));
  fs.writeFileSync(path.join(dir, 'routes.json'), JSON.stringify({
    routeSelectionExpression: '$request.body.action',
    routes: { $default: { handler: 'echo', routeResponse: true } },
  }));
  const proc = spawn(path.join(buildDir, 'wsgw'), ['--routes', path.join(dir, 'routes.json'), '--handlers', path.join(buildDir, 'handlers'),
    '--listen', '127.0.0.1:0', '--management-listen', '127.0.0.1:0', '--node-id', id, '--cluster', `redis://127.0.0.1:${redisPort}`,
    '--access-log', 'off', '--log-level', 'warn'], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(proc);
  // --log-level warn hides "listening": ask the management port from /proc instead of the log.
  let buf = '';
  proc.stdout.on('data', (d) => { buf += d; });
  for (let i = 0; i < 200; ++i) {
    const ports = listeningPorts(proc.pid);
    if (ports.length >= 2) {
      ports.sort((a, b) => a - b);
      // Which is which: the management API answers /healthz.
      for (const p of ports) {
        const ok = await fetch(`http://127.0.0.1:${p}/healthz`).then((r) => r.ok).catch(() => false);
        if (ok) return { id, proc, mgmt: `http://127.0.0.1:${p}`, ws: `ws://127.0.0.1:${ports.find((q) => q !== p)}` };
      }
    }
    await sleep(50);
  }
  throw new Error(`node ${id} did not start: ${buf}`);
}

function listeningPorts(pid) {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try { const m = /socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`)); if (m) inodes.add(m[1]); } catch {}
  }
  const ports = [];
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) ports.push(parseInt(f[1].split(':')[1], 16));
  }
  return ports;
}

function pct(sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : null; }

// Opens n connections to `url` (64 at a time); `onMessage(ws, data)` sees every frame.
async function openMany(url, n, onMessage) {
  const out = [];
  while (out.length < n) {
    const batch = Math.min(64, n - out.length);
    out.push(...await Promise.all(Array.from({ length: batch }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.on('open', () => resolve(ws));
      ws.on('error', reject);
      ws.on('message', (d) => onMessage(ws, d));
    }))));
  }
  return out;
}

async function idsOf(node) {
  const list = await (await fetch(`${node.mgmt}/@connections?limit=1000`)).json();
  return list.items.map((i) => i.connectionId);
}

// H clients POST `{"t": <hrtime ns>}` to targets through `via` for S seconds.
async function pushRun(label, via, targetNode, targets, H) {
  const ids = await idsOf(targetNode);
  const latencies = [];
  let measuring = false, stop = false, posted = 0, failed = 0;
  for (const ws of targets) ws.removeAllListeners('message').on('message', (d) => {
    if (!measuring) return;
    const t = JSON.parse(d.toString()).t;
    latencies.push(Number(process.hrtime.bigint() - BigInt(t)) / 1000);
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: H });
  const { hostname, port } = new URL(via.mgmt);
  let n = 0;
  function loop() {
    if (stop) return;
    const id = ids[n++ % ids.length];
    const body = JSON.stringify({ t: process.hrtime.bigint().toString() });
    const req = http.request({ agent, hostname, port, method: 'POST', path: `/@connections/${id}`,
      headers: { 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => { if (res.statusCode === 200) { if (measuring) posted++; } else failed++; loop(); });
    });
    req.on('error', () => { failed++; });
    req.end(body);
  }
  for (let i = 0; i < H; i++) loop();
  await sleep(1000);  // warm-up
  measuring = true;
  const t0 = process.hrtime.bigint();
  await sleep(S * 1000);
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  stop = true;
  await sleep(500);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  console.log(JSON.stringify({ scenario: label, via: via.id, targetsOn: targetNode.id, httpClients: H, seconds: +elapsed.toFixed(2),
    pushesPerSecond: Math.round(posted / elapsed), delivered: latencies.length, failed,
    latencyUs: { p50: Math.round(pct(latencies, 0.5)), p90: Math.round(pct(latencies, 0.9)), p99: Math.round(pct(latencies, 0.99)) } }));
}

const redisPort = await startRedis();
const nodes = [];
for (const id of ['n1', 'n2', 'n3']) nodes.push(await startNode(id, redisPort));
const [n1, n2] = nodes;

const onN1 = await openMany(n1.ws, 64, () => {});
const onN2 = await openMany(n2.ws, 64, () => {});
// Throughput with H clients, then latency with one client and one push in flight.
await pushRun('push-same-node', n1, n1, onN1, HC);
await pushRun('push-cross-node', n1, n2, onN2, HC);
await pushRun('push-same-node-latency', n1, n1, onN1, 1);
await pushRun('push-cross-node-latency', n1, n2, onN2, 1);
for (const ws of [...onN1, ...onN2]) ws.terminate();
await sleep(500);

// Broadcast: N connections over the three nodes.
let received = 0, target = 0, done = null;
const all = [];
for (const [i, node] of nodes.entries()) {
  const share = Math.floor(N / 3) + (i < N % 3 ? 1 : 0);
  all.push(...await openMany(node.ws, share, () => { if (++received === target && done) done(); }));
}
const times = [];
for (let r = 0; r < R; ++r) {
  received = 0;
  target = all.length;
  const finished = new Promise((resolve) => { done = resolve; });
  const t0 = process.hrtime.bigint();
  const res = await fetch(`${n1.mgmt}/@broadcast`, { method: 'POST', body: `broadcast-${r}` });
  if (res.status !== 200) throw new Error(`broadcast answered ${res.status}`);
  const timeout = sleep(30000).then(() => 'timeout');
  if ((await Promise.race([finished, timeout])) === 'timeout') throw new Error(`broadcast ${r}: ${received} of ${target} delivered in 30 s`);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  await sleep(200);
}
const sorted = [...times].sort((a, b) => a - b);
console.log(JSON.stringify({ scenario: 'broadcast', via: 'n1', connections: all.length, nodes: 3, broadcasts: R,
  msToLastDelivery: { median: +pct(sorted, 0.5).toFixed(1), min: +sorted[0].toFixed(1), max: +sorted[sorted.length - 1].toFixed(1) },
  deliveriesPerSecond: Math.round(all.length / (pct(sorted, 0.5) / 1000)) }));
for (const ws of all) ws.terminate();
for (const n of nodes) n.proc.kill('SIGTERM');
await sleep(1000);
process.exit(0);
