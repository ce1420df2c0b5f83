// POST /@connections rate: H keep-alive HTTP clients push to T live WebSocket connections for S seconds;
// a push counts when the WebSocket client has received it. Prints one JSON line.
// usage: node tools/bench/post-rate.mjs ws://127.0.0.1:8080 http://127.0.0.1:9001 [httpClients=32] [targets=64] [seconds=5]
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../tests/integration/package.json'));
const WebSocket = require('ws');

const [wsUrl = 'ws://127.0.0.1:8080', mgmt = 'http://127.0.0.1:9001', hc = '32', tc = '64', secs = '5'] = process.argv.slice(2);
const H = Number(hc), T = Number(tc), S = Number(secs);
let delivered = 0, posted = 0, failed = 0, measuring = false, stop = false;

const sockets = await Promise.all(Array.from({ length: T }, () => new Promise((resolve, reject) => {
  const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
  ws.on('open', () => resolve(ws));
  ws.on('error', reject);
  ws.on('message', () => { if (measuring) delivered++; });
})));
const list = await (await fetch(`${mgmt}/@connections?limit=1000`)).json();
const ids = list.items.map((i) => i.connectionId);
if (ids.length < T) throw new Error(`expected ${T} connections listed, got ${ids.length}`);

const agent = new http.Agent({ keepAlive: true, maxSockets: H });
const { hostname, port } = new URL(mgmt);
const body = JSON.stringify({ status: 'shipped', order: 12345 });
function loop(i) {
  if (stop) return;
  const id = ids[(i * 7 + posted) % ids.length];
  const req = http.request({ agent, hostname, port, method: 'POST', path: `/@connections/${id}`,
    headers: { 'Content-Length': Buffer.byteLength(body) } }, (res) => {
    res.resume();
    res.on('end', () => { if (res.statusCode === 200) { if (measuring) posted++; } else failed++; loop(i); });
  });
  req.on('error', () => { failed++; if (!stop) setTimeout(() => loop(i), 10); });
  req.end(body);
}
for (let i = 0; i < H; i++) loop(i);
await new Promise((r) => setTimeout(r, 1000));
measuring = true;
const t0 = process.hrtime.bigint();
await new Promise((r) => setTimeout(r, S * 1000));
const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
measuring = false;
stop = true;
console.log(JSON.stringify({ mode: 'post', client: 'node-http', httpClients: H, targets: T, seconds: +elapsed.toFixed(2),
  posted, delivered, failed, postsPerSecond: Math.round(posted / elapsed), deliveredPerSecond: Math.round(delivered / elapsed) }));
agent.destroy();
for (const ws of sockets) ws.terminate();
process.exit(0);
