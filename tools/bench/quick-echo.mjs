// A first, quick echo throughput number: C connections, each keeping W messages in flight (91-byte JSON
// bodies routed to the echo plugin), for S seconds; prints one JSON line. The client is Node's `ws`, so on
// a 2-core machine the client may be the limit: it is a smoke number, not the benchmark suite.
// usage: node tools/bench/quick-echo.mjs ws://127.0.0.1:8080 [connections=64] [inflight=16] [seconds=5]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../tests/integration/package.json'));
const WebSocket = require('ws');

const [url = 'ws://127.0.0.1:8080', conns = '64', inflight = '16', seconds = '5'] = process.argv.slice(2);
const C = Number(conns), W = Number(inflight), S = Number(seconds);
const body = JSON.stringify({ action: 'echo', data: 'x'.repeat(60), n: 0 }).padEnd(91, ' ').slice(0, 91);
let received = 0, measuring = false, stop = false;
const latencies = [];

const sockets = await Promise.all(Array.from({ length: C }, () => new Promise((resolve, reject) => {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const sentAt = [];
  ws.on('open', () => resolve(ws));
  ws.on('error', reject);
  ws.on('message', () => {
    const t = sentAt.shift();
    if (measuring) {
      received++;
      if (latencies.length < 200000) latencies.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    if (!stop) { sentAt.push(process.hrtime.bigint()); ws.send(body); }
  });
  ws.startLoad = () => { for (let i = 0; i < W; i++) { sentAt.push(process.hrtime.bigint()); ws.send(body); } };
})));

for (const ws of sockets) ws.startLoad();
await new Promise((r) => setTimeout(r, 1000));  // warm-up
measuring = true;
const t0 = process.hrtime.bigint();
await new Promise((r) => setTimeout(r, S * 1000));
measuring = false;
const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
stop = true;
latencies.sort((a, b) => a - b);
const pct = (p) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]);
console.log(JSON.stringify({ mode: 'echo', client: 'node-ws', connections: C, inflight: W, bodyBytes: body.length,
  seconds: +elapsed.toFixed(2), messages: received, messagesPerSecond: Math.round(received / elapsed),
  p50us: pct(0.5), p99us: pct(0.99) }));
for (const ws of sockets) ws.terminate();
