// The soak benchmark of issue 16 (run through tools/bench/soak): starts its own wsgw on 127.0.0.1 (a temp
// dir with routes.json, the probe test plugin and the echo handler, limits at their defaults) and drives it
// for N minutes with every kind of traffic the limits of docs/limits.md bound, all at once: pipelined echoes,
// connect/close churn, POST /@connections, group sends, clients that stop reading (which must be closed with
// 1008), clients that flood a slow route (which must only be held back), and a routes.json rewrite every
// 30 s (a hot reload). Every --sample-seconds it prints one JSON line (RSS, CPU of one core, the section 10
// metrics, counters); at the end a summary line judging the targets. Exit status 1 when a target is missed,
// 2 on a usage or setup error. Everything it starts is bounded in count and time and stopped by its own PID.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const SLOW_REASON = 'Slow consumer: send queue over maxSendQueueBytes';

// ---- the traffic mix of issue 16 -----------------------------------------------------------------------------
const MIX = {
  echoConnections: 32,        // each keeps echoInflight messages in flight, as fast as the replies come
  echoInflight: 4,
  echoPadBytes: 64,
  churnPerSecond: 20,         // connect, one echo, close 1000
  churnMaxOpen: 50,           // never more churn connections than this at once
  postsPerSecond: 200,        // POST /@connections/{id}: every other one to a stalled client (while one can take it)
  postsMaxInFlight: 64,       // beyond this a due POST is skipped (and counted), never queued
  postSmallBytes: 32,         // to well-behaved connections
  postStalledBytes: 32000,    // to stalled ones: a 1 MiB queue plus the kernel's buffers fill in seconds
  groupMembers: 8,            // well-behaved; every stalled client joins the group too
  groupSendMs: 100,
  groupPayloadBytes: 1024,
  stalledClients: 4,          // stop reading; each is replaced once closed
  stalledTimeoutSeconds: 60,  // a stalled client still open this long after it stopped reading is a failure
  stalledCloseSeconds: 8,     // its first 410 to its $disconnect: the 5 s close deadline, then the handler and the log read
  flooders: 2,                // pipeline to the slow route and read every reply
  floodInflight: 200,         // client-side bound; far above maxPendingMessages, so the gateway must pause reads
  floodSleepMs: 20,
  floodPadBytes: 4000,
  reloadSeconds: 30,          // at most; a run shorter than 90 s rewrites routes.json every third of its length
  connectTimeoutMs: 10000,
  drainMs: 5000,              // after the traffic stops: time for answers still on their way
};
// The limits' defaults (docs/limits.md), which the soak's routes.json leaves in force (--max-send-queue-bytes
// sets the first).
const LIMITS = { maxSendQueueBytes: 1048576, maxPendingMessages: 64, maxPendingBytes: 1048576, maxMessageBytes: 131072 };
const METRICS = ['wsgw_send_queue_bytes', 'wsgw_pending_bytes', 'wsgw_slow_consumer_closes_total', 'wsgw_reads_paused_total',
  'wsgw_accept_errors_total', 'wsgw_connections'];
const EXTRA_METRICS = ['wsgw_reloads_total', 'wsgw_reload_failures_total'];

// ---- command line ------------------------------------------------------------------------------------------
const USAGE = `usage: tools/bench/soak [--minutes N] [--sample-seconds S] [--wsgw PATH] [--keep] [--max-send-queue-bytes B]
  --minutes N          length of the run (default 10; fractions allowed, 0.05 to 1440)
  --sample-seconds S   one JSON sample line every S seconds (default 5, at least 0.5)
  --wsgw PATH          the gateway binary (default build/wsgw of the repository); the probe plugin is taken
                       from PATH's build dir tests/integration/ (or $WSGW_TEST_PLUGINS_DIR), the echo handler
                       from its handlers/ (or $WSGW_HANDLERS_DIR)
  --keep               keep the temporary directory (routes.json, wsgw.log, the probe's events.jsonl)
  --max-send-queue-bytes B
                       limits.maxSendQueueBytes of the soak's routes.json (default: the gateway's default,
                       1048576); a bound larger than a stalled client gets in the run makes the soak fail`;

function usageError(msg) {
  process.stderr.write(`soak: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { minutes: 10, sampleSeconds: 5, wsgw: path.join(REPO, 'build', 'wsgw'), keep: false, maxSendQueueBytes: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usageError(`${arg} needs a value`);
      return argv[++i];
    };
    const number = (min, max) => {
      const text = value();
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) usageError(`${arg} must be a number from ${min} to ${max}, got ${JSON.stringify(text)}`);
      return n;
    };
    if (arg === '--minutes') o.minutes = number(0.05, 1440);
    else if (arg === '--sample-seconds') o.sampleSeconds = number(0.5, 3600);
    else if (arg === '--wsgw') o.wsgw = path.resolve(value());
    else if (arg === '--keep') o.keep = true;
    else if (arg === '--max-send-queue-bytes') o.maxSendQueueBytes = Math.floor(number(1024, 1073741824));
    else if (arg === '--help' || arg === '-h') { process.stdout.write(`${USAGE}\n`); process.exit(0); }
    else usageError(`unknown argument ${JSON.stringify(arg)}`);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
if (opts.maxSendQueueBytes !== null) LIMITS.maxSendQueueBytes = opts.maxSendQueueBytes;
const note = (msg) => process.stderr.write(`soak: ${msg}\n`);

let WebSocket;
try {
  WebSocket = createRequire(path.join(REPO, 'tests', 'integration', 'package.json'))('ws');
} catch (err) {
  process.stderr.write(`soak: the 'ws' package is missing from tests/integration/node_modules: run \`npm ci --prefix tests/integration\` (${err.message})\n`);
  process.exit(2);
}

const buildDir = path.dirname(opts.wsgw);
const pluginFiles = {
  probe: path.join(process.env.WSGW_TEST_PLUGINS_DIR ?? path.join(buildDir, 'tests', 'integration'), 'probe.so'),
  echo: path.join(process.env.WSGW_HANDLERS_DIR ?? path.join(buildDir, 'handlers'), 'echo.so'),
};
for (const [what, file] of [['the gateway', opts.wsgw], ['the probe test plugin', pluginFiles.probe], ['the echo handler', pluginFiles.echo]]) {
  if (!fs.existsSync(file)) usageError(`${what} is not at ${file}: build it first (ninja -C ${buildDir}) or pass --wsgw BUILD/wsgw`);
}

const durationMs = opts.minutes * 60000;
const referenceMs = Math.min(60000, durationMs / 3);               // "minute 1": later RSS is compared with it
const reloadMs = Math.min(MIX.reloadSeconds * 1000, durationMs / 3);

// ---- small helpers -----------------------------------------------------------------------------------------
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let t0 = performance.now();
const elapsedMs = () => performance.now() - t0;
let clockTicks = 100;
try { clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { /* Linux: 100 */ }

// What the kernel may hold for a client that reads nothing, on top of the gateway's queue: the gateway
// socket's send buffer (it can grow to tcp_wmem's maximum) and the paused client's receive buffer (it stays
// at tcp_rmem's default, since autotuning only grows it when the application reads), plus frame headers.
function kernelAllowanceBytes() {
  const read = (name, fallback) => {
    try { return fs.readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).map(Number); } catch { return fallback; }
  };
  const wmem = read('tcp_wmem', [4096, 16384, 4194304]);
  const rmem = read('tcp_rmem', [4096, 131072, 6291456]);
  return wmem[2] + 2 * rmem[1] + 65536;
}
const STALLED_BOUND_BYTES = LIMITS.maxSendQueueBytes + kernelAllowanceBytes();

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : null;
}

// utime + stime of the process in seconds (fields 14 and 15 of /proc/PID/stat; the command name may hold spaces).
function cpuSeconds(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

// A sanitizer build's RSS is mostly the sanitizer's (shadow memory, ASan's quarantine of freed blocks,
// which grows for the whole run): the RSS target is then not judged. Seen in the libraries the process mapped.
function sanitizerOf(pid) {
  try {
    const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
    if (/lib(asan|clang_rt\.asan)/.test(maps)) return 'address';
    if (/lib(tsan|clang_rt\.tsan)/.test(maps)) return 'thread';
    if (/lib(msan|clang_rt\.msan)/.test(maps)) return 'memory';
  } catch { /* not readable: judged as a plain build */ }
  return null;
}

function httpGet(url, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

function parseMetrics(text, names) {
  const out = {};
  for (const name of names) {
    const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)`, 'm').exec(text);
    out[name] = m ? Number(m[1]) : null;
  }
  return out;
}

// ---- the gateway ---------------------------------------------------------------------------------------------
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-soak-'));
const handlersDir = path.join(tmp, 'handlers');
fs.mkdirSync(handlersDir);
for (const [name, file] of Object.entries(pluginFiles)) fs.symlinkSync(file, path.join(handlersDir, `${name}.so`));
const routesPath = path.join(tmp, 'routes.json');
const eventsPath = path.join(tmp, 'events.jsonl');

// "probe" logs its events ($connect and $disconnect of every connection, whoami, join): that log is how the
// soak learns a connection's close code and reason even when the client never read its close frame. "slow"
// is a second, silent instance of the same plugin for the busy routes (sleep, sendgroup); echoes go to the
// echo handler. Only "description" changes between rewrites, so a reload swaps in an equal table.
function routesJson(generation) {
  return JSON.stringify({
    description: `wsgw soak; rewritten to exercise the hot reload (generation ${generation})`,
    routeSelectionExpression: '$request.body.action',
    handlers: { probe: { config: { log: eventsPath } }, slow: { plugin: 'probe', config: {} } },
    ...(opts.maxSendQueueBytes !== null ? { limits: { maxSendQueueBytes: opts.maxSendQueueBytes } } : {}),
    routes: {
      $connect: { handler: 'probe' },
      $disconnect: { handler: 'probe' },
      whoami: { handler: 'probe', routeResponse: true },
      join: { handler: 'probe', routeResponse: true },
      sleep: { handler: 'slow', routeResponse: true },
      sendgroup: { handler: 'slow', routeResponse: true },
      echo: { handler: 'echo', routeResponse: true },
      $default: { handler: 'echo', routeResponse: true },
    },
  }, null, 2);
}

function writeRoutes(generation) {
  const staging = path.join(tmp, 'routes.json.next');
  fs.writeFileSync(staging, routesJson(generation));
  fs.renameSync(staging, routesPath);  // whole files only: the watcher never reads half of one
}

const gw = { proc: null, exit: null, logErrors: 0, logWarnings: 0, firstErrors: [] };

function startGateway() {
  writeRoutes(0);
  const logFd = fs.openSync(path.join(tmp, 'wsgw.log'), 'a');
  const args = ['--routes', routesPath, '--handlers', handlersDir, '--db', path.join(tmp, 'wsgw.db'),
    '--listen', '127.0.0.1:0', '--management-listen', '127.0.0.1:0', '--node-id', 'soak', '--access-log', 'off',
    '--log-level', 'info'];
  gw.proc = spawn(opts.wsgw, args, { cwd: tmp, stdio: ['ignore', 'pipe', logFd] });
  gw.pid = gw.proc.pid;
  gw.exited = new Promise((resolve) => {
    gw.proc.on('exit', (code, signal) => { gw.exit = { code, signal }; resolve(gw.exit); });
    gw.proc.on('error', (err) => { gw.exit = { code: null, signal: null, error: err.message }; resolve(gw.exit); });
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wsgw did not log "listening" within 20 s; see ${tmp}/wsgw.log`)), 20000);
    gw.exited.then((exit) => { clearTimeout(timer); reject(new Error(`wsgw exited (${JSON.stringify(exit)}) before listening; see ${tmp}/wsgw.log`)); });
    readline.createInterface({ input: gw.proc.stdout }).on('line', (text) => {
      fs.writeSync(logFd, `${text}\n`);
      let line;
      try { line = JSON.parse(text); } catch { return; }
      if (line.level === 'error') {
        gw.logErrors++;
        if (gw.firstErrors.length < 5) gw.firstErrors.push(line.detail ? `${line.msg}: ${line.detail}` : line.msg);
      } else if (line.level === 'warn') {
        gw.logWarnings++;
      }
      if (line.msg === 'listening') {
        clearTimeout(timer);
        gw.port = Number(String(line.address).split(':').pop());
        gw.url = `ws://127.0.0.1:${gw.port}/`;
        gw.managementUrl = `http://${line.management}`;
        resolve();
      }
    });
  });
}

async function stopGateway() {
  if (!gw.proc || gw.exit) return gw.exit;
  gw.proc.kill('SIGTERM');
  const killer = setTimeout(() => { note('wsgw still running 15 s after SIGTERM: SIGKILL'); gw.proc.kill('SIGKILL'); }, 15000);
  const exit = await gw.exited;
  clearTimeout(killer);
  return exit;
}

// ---- counters (cumulative) ---------------------------------------------------------------------------------
const count = {
  echoes: 0, echoMismatches: 0,
  churnConnects: 0, churnCompleted: 0, connectErrors: 0,
  posts200: 0, posts410: 0, postsOther: 0, postsSkipped: 0, posts200WellBehaved: 0, posts410WellBehaved: 0,
  pushesReceived: 0,
  groupSends: 0, groupSendErrors: 0, groupReceived: 0,
  floodReplies: 0,
  wellBehavedClosed: 0,
  stalledOpened: 0, stalledClosed1008: 0, stalledClosedOther: 0, stalledNotClosed: 0, stalledOutOfBound: 0,
  rewrites: 0,
};
const wellBehavedCloses = [];   // the first few, for the summary
const stalledOutOfBoundExamples = [];
const stalledStats = { maxAcceptedBytes: 0, maxCloseMs: 0, maxSecondsToClose: 0 };
let winding = false;            // no new traffic from here on
let stopping = false;           // closes from here on are the soak's own
const wellBehavedById = new Map();  // connection ID -> ws, for the probe's $disconnect events
const liveWs = new Set();           // every well-behaved ws client, to close at the end

// A well-behaved connection was closed, seen by the client or in the probe's log; counted once per client.
function wellBehavedClosed(ws, kind, code, reason) {
  if (stopping || (ws && ws.closeCounted)) return;
  if (ws) ws.closeCounted = true;
  count.wellBehavedClosed++;
  if (wellBehavedCloses.length < 10) wellBehavedCloses.push({ kind, code, reason, t: Math.round(elapsedMs() / 1000) });
}

// A well-behaved `ws` client; resolves once open. Text replies to request() go to it; pushes ("push:"),
// group messages ("g:") and everything else to onMessage.
function openWs(kind, onMessage) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(gw.url, { handshakeTimeout: MIX.connectTimeoutMs, perMessageDeflate: false });
    ws.kind = kind;
    ws.replyWaiters = [];
    let opened = false;
    ws.on('open', () => { opened = true; liveWs.add(ws); resolve(ws); });
    ws.on('message', (data, isBinary) => {
      const text = data.toString('utf8');
      if (text.startsWith('push:')) { count.pushesReceived++; return; }
      if (text.startsWith('g:')) { count.groupReceived++; return; }
      const waiter = ws.replyWaiters.shift();
      if (waiter) waiter(text);
      else onMessage?.(ws, text, isBinary);
    });
    ws.on('error', (err) => { ws.lastError = err.message; if (!opened) reject(err); });
    ws.on('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      reject(new Error(`upgrade refused with HTTP ${res.statusCode}`));
    });
    ws.on('close', (code, reason) => {
      liveWs.delete(ws);
      if (opened && !ws.closingByUs) wellBehavedClosed(ws, kind, code, `${reason.toString('utf8')}${ws.lastError ? ` (${ws.lastError})` : ''}`);
    });
  });
}

// Sends one JSON message and resolves with the next reply that is not a push or a group message.
function request(ws, message, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply to ${JSON.stringify(message)} within ${timeoutMs} ms`)), timeoutMs);
    ws.replyWaiters.push((text) => { clearTimeout(timer); resolve(text); });
    ws.send(JSON.stringify(message));
  });
}

async function identify(ws) {
  ws.id = await request(ws, { action: 'whoami' });
  wellBehavedById.set(ws.id, ws);
  return ws;
}

// ---- echo connections -----------------------------------------------------------------------------------------
const echoClients = [];

function sendEcho(ws) {
  const msg = JSON.stringify({ action: 'echo', n: ws.nextSeq++, pad: 'e'.repeat(MIX.echoPadBytes) });
  ws.inflight.push(msg);
  ws.send(msg);
}

function onEchoReply(ws, text, isBinary) {
  const expected = ws.inflight.shift();
  if (isBinary || text !== expected) count.echoMismatches++;
  else count.echoes++;
  if (!winding && ws.readyState === WebSocket.OPEN) sendEcho(ws);
}

async function startEcho() {
  for (let i = 0; i < MIX.echoConnections; i++) {
    const ws = await identify(await openWs('echo', onEchoReply));
    ws.nextSeq = 0;
    ws.inflight = [];
    echoClients.push(ws);
    for (let k = 0; k < MIX.echoInflight; k++) sendEcho(ws);
  }
}

// ---- connect/close churn ---------------------------------------------------------------------------------------
let churnOpen = 0;

function churnOne() {
  if (churnOpen >= MIX.churnMaxOpen) return;
  churnOpen++;
  count.churnConnects++;
  const ws = new WebSocket(gw.url, { handshakeTimeout: MIX.connectTimeoutMs, perMessageDeflate: false });
  let opened = false;
  ws.on('open', () => { opened = true; ws.send(JSON.stringify({ action: 'echo', churn: count.churnConnects })); });
  ws.on('message', () => { ws.closingByUs = true; ws.close(1000); });
  ws.on('error', (err) => { ws.lastError = err.message; });
  ws.on('unexpected-response', (req, res) => { res.resume(); req.destroy(); ws.lastError = `HTTP ${res.statusCode}`; });
  ws.on('close', (code, reason) => {
    churnOpen--;
    if (!opened) {
      if (!stopping) count.connectErrors++;
    } else if (ws.closingByUs) {
      count.churnCompleted++;
    } else {
      wellBehavedClosed(ws, 'churn', code, `${reason.toString('utf8')}${ws.lastError ? ` (${ws.lastError})` : ''}`);
    }
  });
}

// ---- group members and the group sender -------------------------------------------------------------------------
const GROUP = 'soak';
const groupMembers = [];
let groupSender = null;
let groupSendBusy = false;
let groupSeq = 0;
let groupExpected = 0;  // deliveries owed to the well-behaved members: accepted sends x members

async function startGroup() {
  for (let i = 0; i < MIX.groupMembers; i++) {
    const ws = await identify(await openWs('group'));
    const joined = await request(ws, { action: 'join', group: GROUP });
    if (joined !== '0') throw new Error(`join answered ${JSON.stringify(joined)}, not 0`);
    groupMembers.push(ws);
  }
  groupSender = await identify(await openWs('group-sender'));
}

async function groupSend() {
  if (groupSendBusy || winding || groupSender.readyState !== WebSocket.OPEN) return;
  groupSendBusy = true;
  const prefix = `g:${++groupSeq}:`;
  const data = prefix + 'g'.repeat(Math.max(0, MIX.groupPayloadBytes - prefix.length));
  const stalledMembers = stalled.filter((s) => s.joined && !s.verdict);
  try {
    const answer = await request(groupSender, { action: 'sendgroup', group: GROUP, data });
    if (answer === 'sent:0') {
      count.groupSends++;
      groupExpected += groupMembers.length;
      for (const s of stalledMembers) s.acceptedBytes += data.length;
    } else {
      count.groupSendErrors++;
    }
  } catch {
    count.groupSendErrors++;
  } finally {
    groupSendBusy = false;
  }
}

// ---- flooders: pipeline 4 KB messages to a route that sleeps 20 ms -----------------------------------------------
const flooders = [];

function floodFill(ws) {
  while (!winding && ws.readyState === WebSocket.OPEN && ws.floodInflight < MIX.floodInflight) {
    ws.floodInflight++;
    ws.send(ws.floodMessage);
  }
}

async function startFlooders() {
  for (let i = 0; i < MIX.flooders; i++) {
    const ws = await identify(await openWs('flooder', (w, text) => {
      if (text === 'slept') count.floodReplies++;
      else count.echoMismatches++;
      w.floodInflight--;
      floodFill(w);
    }));
    ws.floodInflight = 0;
    ws.floodMessage = JSON.stringify({ action: 'sleep', ms: MIX.floodSleepMs, pad: 'x'.repeat(MIX.floodPadBytes) });
    flooders.push(ws);
    floodFill(ws);
  }
}

// ---- stalled clients: a raw socket that stops reading after whoami and join --------------------------------------
const stalled = [];        // the live slots (at most MIX.stalledClients)
const stalledById = new Map();

function maskedTextFrame(text) {
  const data = Buffer.from(text);
  if (data.length >= 126) throw new Error('maskedTextFrame: short control messages only');
  const mask = crypto.randomBytes(4);
  const out = Buffer.alloc(6 + data.length);
  out[0] = 0x81;
  out[1] = 0x80 | data.length;
  mask.copy(out, 2);
  for (let i = 0; i < data.length; i++) out[6 + i] = data[i] ^ mask[i & 3];
  return out;
}

// The first complete unmasked server frame at the front of buf: {opcode, text, size} or null.
function serverFrame(buf) {
  if (buf.length < 2) return null;
  let len = buf[1] & 0x7f;
  let pos = 2;
  if (len === 126) { if (buf.length < 4) return null; len = buf.readUInt16BE(2); pos = 4; }
  else if (len === 127) { if (buf.length < 10) return null; len = Number(buf.readBigUInt64BE(2)); pos = 10; }
  if (buf.length < pos + len) return null;
  return { opcode: buf[0] & 0x0f, text: buf.subarray(pos, pos + len).toString('utf8'), size: pos + len };
}

function openStalled() {
  const s = { sock: null, id: null, joined: false, verdict: null, acceptedBytes: 0, first410At: null, stalledAt: null, opening: true };
  stalled.push(s);
  count.stalledOpened++;
  const sock = net.connect({ host: '127.0.0.1', port: gw.port });
  s.sock = sock;
  let buf = Buffer.alloc(0);
  let phase = 'upgrade';
  const fail = (why) => {
    if (!s.opening) return;
    s.opening = false;
    count.stalledOpened--;
    if (!stopping && !winding) {
      count.connectErrors++;
      note(`a stalled client could not be set up: ${why}`);
    }
    sock.destroy();
    stalled.splice(stalled.indexOf(s), 1);
  };
  const timer = setTimeout(() => fail('no whoami/join answer within 10 s'), MIX.connectTimeoutMs);
  sock.on('error', (err) => { if (s.opening) { clearTimeout(timer); fail(err.message); } });
  sock.on('close', () => { if (s.opening) { clearTimeout(timer); fail('the socket closed'); } });
  sock.on('connect', () => {
    const key = crypto.randomBytes(16).toString('base64');
    sock.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
  sock.on('data', (chunk) => {
    if (!s.opening) return;
    buf = Buffer.concat([buf, chunk]);
    if (phase === 'upgrade') {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = buf.subarray(0, buf.indexOf('\r\n')).toString('latin1');
      if (!/^HTTP\/1\.1 101/.test(status)) { clearTimeout(timer); fail(`upgrade answered ${status}`); return; }
      buf = buf.subarray(end + 4);
      phase = 'whoami';
      sock.write(maskedTextFrame(JSON.stringify({ action: 'whoami' })));
    }
    for (let f = serverFrame(buf); f; f = serverFrame(buf)) {
      buf = buf.subarray(f.size);
      if (f.opcode !== 1 || f.text.startsWith('g:') || f.text.startsWith('push:')) continue;
      if (phase === 'whoami') {
        s.id = f.text;
        stalledById.set(s.id, s);
        phase = 'join';
        sock.write(maskedTextFrame(JSON.stringify({ action: 'join', group: GROUP })));
      } else if (phase === 'join') {
        clearTimeout(timer);
        if (f.text !== '0') { fail(`join answered ${JSON.stringify(f.text)}`); return; }
        // From here on nothing is read: the kernel's buffers fill, then the gateway's send queue.
        sock.pause();
        s.joined = true;
        s.opening = false;
        s.stalledAt = performance.now();
        sock.removeAllListeners('data');
        return;
      }
    }
  });
}

// A stalled client's $disconnect (from the probe's log), or its timeout: the verdict, and a new client.
function stalledVerdict(s, code, reason) {
  if (s.verdict) return;
  const at = performance.now();
  s.verdict = { code, reason };
  const secondsToClose = (at - s.stalledAt) / 1000;
  const closeMs = s.first410At === null ? 0 : at - s.first410At;
  const inBound = s.acceptedBytes <= STALLED_BOUND_BYTES && closeMs <= MIX.stalledCloseSeconds * 1000;
  if (code === null) count.stalledNotClosed++;
  else if (code === 1008 && reason === SLOW_REASON) count.stalledClosed1008++;
  else count.stalledClosedOther++;
  if (code !== null && !inBound) {
    count.stalledOutOfBound++;
    if (stalledOutOfBoundExamples.length < 5) stalledOutOfBoundExamples.push({ acceptedBytes: s.acceptedBytes, closeMs: Math.round(closeMs) });
  }
  if (code !== null && code !== 1008 && stalledOutOfBoundExamples.length < 5) stalledOutOfBoundExamples.push({ code, reason });
  stalledStats.maxAcceptedBytes = Math.max(stalledStats.maxAcceptedBytes, s.acceptedBytes);
  stalledStats.maxCloseMs = Math.max(stalledStats.maxCloseMs, Math.round(closeMs));
  stalledStats.maxSecondsToClose = Math.max(stalledStats.maxSecondsToClose, Math.round(secondsToClose * 10) / 10);
  s.sock.destroy();
  stalled.splice(stalled.indexOf(s), 1);
  if (!winding) openStalled();
}

function checkStalledTimeouts() {
  const limit = MIX.stalledTimeoutSeconds * 1000;
  for (const s of [...stalled]) {
    if (s.stalledAt !== null && !s.verdict && performance.now() - s.stalledAt > limit) stalledVerdict(s, null, 'not closed');
  }
}

// ---- the probe's event log: $disconnect codes ---------------------------------------------------------------------
let logOffset = 0;
let logPartial = '';

function readProbeLog() {
  let fd;
  try { fd = fs.openSync(eventsPath, 'r'); } catch { return; }
  try {
    const chunk = Buffer.alloc(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, logOffset);
      if (n <= 0) break;
      logOffset += n;
      const lines = (logPartial + chunk.subarray(0, n).toString('utf8')).split('\n');
      logPartial = lines.pop();
      for (const line of lines) {
        if (!line.includes('"DISCONNECT"')) continue;
        let ev;
        try { ev = JSON.parse(line); } catch { continue; }
        const c = ev.requestContext ?? {};
        if (c.eventType !== 'DISCONNECT') continue;
        const s = stalledById.get(c.connectionId);
        if (s) {
          stalledById.delete(c.connectionId);
          stalledVerdict(s, c.disconnectStatusCode ?? null, c.disconnectReason ?? '');
          continue;
        }
        const ws = wellBehavedById.get(c.connectionId);
        if (ws && !ws.closingByUs) wellBehavedClosed(ws, ws.kind, c.disconnectStatusCode, c.disconnectReason);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

// ---- POST /@connections ------------------------------------------------------------------------------------------
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
let postsInFlight = 0;
let postsIssued = 0;
let postTurn = 0;
const smallBody = Buffer.from(`push:${'p'.repeat(MIX.postSmallBytes - 5)}`);
const stalledBody = Buffer.from(`push:${'q'.repeat(MIX.postStalledBytes - 5)}`);

function post(id, body) {
  return new Promise((resolve) => {
    const url = new URL(`${gw.managementUrl}/@connections/${encodeURIComponent(id)}`);
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent,
      headers: { 'Content-Length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(null));
    req.end(body);
  });
}

async function postOne() {
  const toStalled = (postTurn++ & 1) === 0;
  const candidates = stalled.filter((s) => s.joined && !s.verdict && s.first410At === null);
  let target;
  let body;
  if (toStalled && candidates.length) {
    target = candidates[postTurn % candidates.length];
    body = stalledBody;
  } else {
    const pool = [...echoClients, ...groupMembers, ...flooders];
    target = pool[postTurn % pool.length];
    body = smallBody;
  }
  postsInFlight++;
  const status = await post(target.id, body);
  postsInFlight--;
  const wellBehaved = body === smallBody;
  if (status === 200) {
    count.posts200++;
    if (wellBehaved) count.posts200WellBehaved++;
    else target.acceptedBytes += body.length;
  } else if (status === 410) {
    count.posts410++;
    if (wellBehaved) count.posts410WellBehaved++;
    else if (target.first410At === null) target.first410At = performance.now();
  } else {
    count.postsOther++;
  }
}

function postTick(startedAt) {
  const due = Math.floor(((performance.now() - startedAt) / 1000) * MIX.postsPerSecond);
  for (; postsIssued < due; postsIssued++) {
    if (postsInFlight >= MIX.postsMaxInFlight) count.postsSkipped++;
    else postOne();
  }
}

// ---- sampling --------------------------------------------------------------------------------------------------
const samples = [];
let lastCpu = null;

async function sample() {
  const t = elapsedMs() / 1000;
  let rss = null;
  let cpuPct = null;
  try {
    rss = rssKb(gw.pid);
    const cpu = cpuSeconds(gw.pid);
    const at = performance.now();
    if (lastCpu) cpuPct = Math.round(((cpu - lastCpu.cpu) / ((at - lastCpu.at) / 1000)) * 1000) / 10;
    lastCpu = { cpu, at };
  } catch { /* the gateway is gone: the exit is reported */ }
  let metrics = Object.fromEntries(METRICS.map((m) => [m, null]));
  let extra = {};
  try {
    const res = await httpGet(`${gw.managementUrl}/metrics`);
    metrics = parseMetrics(res.body, METRICS);
    extra = parseMetrics(res.body, EXTRA_METRICS);
  } catch (err) {
    note(`GET /metrics failed: ${err.message}`);
  }
  const line = {
    t: Math.round(t * 10) / 10, rssKb: rss, cpuPct,
    connections: liveWs.size + churnOpen + stalled.length,
    metrics,
    echoes: count.echoes, posts200: count.posts200, posts410: count.posts410,
    wellBehavedClosed: count.wellBehavedClosed, stalledClosed1008: count.stalledClosed1008, stalledClosedOther: count.stalledClosedOther,
    churn: count.churnCompleted, groupReceived: count.groupReceived, floodReplies: count.floodReplies,
    reloads: extra.wsgw_reloads_total ?? null,
  };
  samples.push(line);
  process.stdout.write(`${JSON.stringify(line)}\n`);
  return { line, extra };
}

// ---- the run ---------------------------------------------------------------------------------------------------
let interrupted = false;
let wakeMain = null;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    note(`${sig}: ending the run early`);
    wakeMain?.();
  });
}

function summarize(lastExtra, drainInfo) {
  const reference = samples.find((s) => s.t * 1000 >= referenceMs - 1) ?? null;
  const after = reference ? samples.filter((s) => s.t > reference.t && s.rssKb !== null) : [];
  const ref = reference?.rssKb ?? null;
  const maxRss = after.length ? Math.max(...after.map((s) => s.rssKb)) : null;
  const minRss = after.length ? Math.min(...after.map((s) => s.rssKb)) : null;
  const pct = (v) => (ref && v !== null ? Math.round(((v - ref) / ref) * 1000) / 10 : null);
  const stalledTotal = count.stalledClosed1008 + count.stalledClosedOther + count.stalledNotClosed;
  const errors = {
    echoMismatches: count.echoMismatches, connectErrors: count.connectErrors, postsOther: count.postsOther,
    posts410WellBehaved: count.posts410WellBehaved, pushesLost: drainInfo.pushesLost, groupLost: drainInfo.groupLost,
    groupSendErrors: count.groupSendErrors, reloadFailures: lastExtra.wsgw_reload_failures_total ?? null,
    gatewayExitedEarly: drainInfo.exitedEarly,
  };
  const sanitizer = sanitizerOf(gw.pid) ?? gw.sanitizer ?? null;
  const targets = {
    rssWithin10PctOfMinute1: sanitizer ? null
      : Boolean(ref && after.length && Math.abs(pct(maxRss)) <= 10 && Math.abs(pct(minRss)) <= 10),
    noWellBehavedClosed: count.wellBehavedClosed === 0,
    everyStalledClosed1008InBound: stalledTotal > 0 && count.stalledClosed1008 === stalledTotal && count.stalledOutOfBound === 0,
    noErrors: Object.values(errors).every((v) => !v),
    trafficRan: count.echoes > 0 && count.posts200 > 0 && count.churnCompleted > 0 && count.groupReceived > 0 &&
      count.floodReplies > 0 && (lastExtra.wsgw_reloads_total ?? 0) > 0,
  };
  return {
    summary: true,
    pass: Object.values(targets).every((ok) => ok !== false),
    sanitizer,
    minutes: Math.round((samples.at(-1)?.t ?? 0) / 6) / 10, interrupted,
    samples: samples.length,
    referenceSeconds: reference ? reference.t : null,
    rssMinute1Kb: ref, rssMaxAfterMinute1Kb: maxRss, rssMinAfterMinute1Kb: minRss,
    rssMaxDeviationPct: pct(maxRss), rssMinDeviationPct: pct(minRss),
    wellBehavedClosed: count.wellBehavedClosed, wellBehavedCloses,
    stalledClosed1008: count.stalledClosed1008, stalledTotal, stalledClosedOther: count.stalledClosedOther,
    stalledNotClosed: count.stalledNotClosed, stalledOutOfBound: count.stalledOutOfBound, stalledOutOfBoundExamples,
    stalledBoundBytes: STALLED_BOUND_BYTES, stalledMaxAcceptedBytes: stalledStats.maxAcceptedBytes,
    stalledMaxCloseMsAfter410: stalledStats.maxCloseMs, stalledMaxSecondsToClose: stalledStats.maxSecondsToClose,
    stalledStillOpenAtEnd: drainInfo.stalledOpenAtEnd,
    maxCpuPct: Math.max(0, ...samples.map((s) => s.cpuPct ?? 0)),
    maxSendQueueBytes: Math.max(0, ...samples.map((s) => s.metrics.wsgw_send_queue_bytes ?? 0)),
    maxPendingBytes: Math.max(0, ...samples.map((s) => s.metrics.wsgw_pending_bytes ?? 0)),
    totals: {
      echoes: count.echoes, churnCompleted: count.churnCompleted, posts200: count.posts200, posts410: count.posts410,
      postsSkipped: count.postsSkipped, pushesReceived: count.pushesReceived, groupSends: count.groupSends,
      groupReceived: count.groupReceived, floodReplies: count.floodReplies, rewrites: count.rewrites,
      reloads: lastExtra.wsgw_reloads_total ?? null,
      slowConsumerCloses: samples.at(-1)?.metrics.wsgw_slow_consumer_closes_total ?? null,
      readsPaused: samples.at(-1)?.metrics.wsgw_reads_paused_total ?? null,
      acceptErrors: samples.at(-1)?.metrics.wsgw_accept_errors_total ?? null,
      // Reported, not judged: what a client would notice is in `errors`; a log line is for a person to read.
      gatewayWarnLogLines: gw.logWarnings, gatewayErrorLogLines: gw.logErrors,
    },
    errors,
    gatewayErrors: gw.firstErrors,  // the first few error lines' messages
    targets,
  };
}

async function main() {
  const hardStop = setTimeout(() => {
    note('hard stop: the run overran its length by 3 minutes; killing wsgw');
    gw.proc?.kill('SIGKILL');
    process.exit(1);
  }, durationMs + 180000);
  hardStop.unref();

  try {
    await startGateway();
  } catch (err) {
    note(err.message);
    gw.proc?.kill('SIGKILL');
    process.exit(2);
  }
  gw.sanitizer = sanitizerOf(gw.pid);
  note(`wsgw ${gw.pid} on ${gw.url} (management ${gw.managementUrl}), ${opts.minutes} min, temp dir ${tmp}`);

  const timers = [];
  const every = (ms, fn) => timers.push(setInterval(fn, ms));
  try {
    await startEcho();
    await startGroup();
    await startFlooders();
  } catch (err) {
    note(`setting up the clients failed: ${err.message}`);
    for (const ws of liveWs) { ws.closingByUs = true; ws.terminate(); }
    await stopGateway();
    process.exit(2);
  }
  t0 = performance.now();
  lastCpu = { cpu: cpuSeconds(gw.pid), at: performance.now() };
  for (let i = 0; i < MIX.stalledClients; i++) openStalled();
  const churnStart = performance.now();
  let churnIssued = 0;
  every(50, () => {
    const due = Math.floor(((performance.now() - churnStart) / 1000) * MIX.churnPerSecond);
    for (; churnIssued < due; churnIssued++) churnOne();
  });
  const postStart = performance.now();
  every(50, () => postTick(postStart));
  every(MIX.groupSendMs, groupSend);
  every(250, () => { readProbeLog(); checkStalledTimeouts(); });
  every(reloadMs, () => { writeRoutes(++count.rewrites); });

  let lastExtra = {};
  let exitedEarly = false;
  for (let k = 1; ; k++) {
    const at = Math.min(k * opts.sampleSeconds * 1000, durationMs);
    await new Promise((resolve) => {
      wakeMain = resolve;
      const timer = setTimeout(resolve, Math.max(0, at - elapsedMs()));
      gw.exited.then(() => { clearTimeout(timer); resolve(); });
    });
    if (gw.exit) { exitedEarly = true; note(`wsgw exited during the run: ${JSON.stringify(gw.exit)}`); break; }
    ({ extra: lastExtra } = await sample());
    if (interrupted || at >= durationMs) break;
  }

  // Wind down: no new traffic, then give what is on its way time to arrive before judging.
  winding = true;
  for (const t of timers) clearInterval(t);
  const drainUntil = performance.now() + MIX.drainMs;
  while (performance.now() < drainUntil && !gw.exit &&
         (postsInFlight > 0 || count.pushesReceived < count.posts200WellBehaved || count.groupReceived < groupExpected)) {
    await sleep(50);
  }
  readProbeLog();
  const drainInfo = {
    pushesLost: Math.max(0, count.posts200WellBehaved - count.pushesReceived),
    groupLost: Math.max(0, groupExpected - count.groupReceived),
    stalledOpenAtEnd: stalled.length,
    exitedEarly,
  };
  if (!gw.exit) {
    try { lastExtra = parseMetrics((await httpGet(`${gw.managementUrl}/metrics`)).body, EXTRA_METRICS); } catch { /* keep the last sample's */ }
  }
  stopping = true;
  for (const ws of liveWs) { ws.closingByUs = true; ws.close(1000); }
  for (const s of stalled) s.sock.destroy();
  const closeUntil = performance.now() + 5000;
  while ((liveWs.size > 0 || churnOpen > 0) && performance.now() < closeUntil) await sleep(50);
  for (const ws of liveWs) ws.terminate();
  agent.destroy();
  const exit = await stopGateway();
  if (!exitedEarly && exit && exit.code !== 0) note(`wsgw exited ${JSON.stringify(exit)} after SIGTERM`);

  const summary = summarize(lastExtra, drainInfo);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  const failed = Object.entries(summary.targets).filter(([, ok]) => ok === false).map(([name]) => name);
  if (summary.sanitizer) note(`a ${summary.sanitizer}-sanitizer build: the RSS target is not judged`);
  if (failed.length) note(`FAIL: ${failed.join(', ')}`);
  else note('PASS: every target met');
  if (opts.keep || failed.length) note(`kept ${tmp}`);
  else fs.rmSync(tmp, { recursive: true, force: true });
  process.exit(failed.length ? 1 : 0);
}

await main();
