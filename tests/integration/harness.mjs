// Harness of the end-to-end tests: starts a real wsgw in a fresh temp dir (its own routes.json, db file and
// a handlers dir of symlinked .so files), waits for its "listening" log line, and offers the clients the
// tests talk to it with (a queued `ws` client, HTTP refusals, raw sockets, the sqlite3 CLI, the probe's
// event log). Every wait has a timeout and every loop a bound, so a broken gateway fails a test instead of
// hanging the suite.
import { before, after } from 'node:test';
import { spawn, execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

let WebSocket;
try {
  ({ default: WebSocket } = await import('ws'));
} catch (err) {
  throw new Error(`the integration tests need the 'ws' package: run \`npm ci --prefix tests/integration\` (${err.message})`);
}
export { WebSocket };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');
const DEFAULT_BUILD = process.env.WSGW_BUILD_DIR ?? '/tmp/build-it';
export const WSGW_BIN = process.env.WSGW_BIN ?? path.join(DEFAULT_BUILD, 'wsgw');
export const HANDLERS_DIR = process.env.WSGW_HANDLERS_DIR ?? path.join(DEFAULT_BUILD, 'handlers');
export const TEST_PLUGINS_DIR = process.env.WSGW_TEST_PLUGINS_DIR ?? path.join(DEFAULT_BUILD, 'tests', 'integration');

const execFileP = promisify(execFile);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A process's resident memory (VmRSS), in kB.
export function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// Under AddressSanitizer freed memory waits in a quarantine (up to 256 MB) and every byte has shadow, so
// resident memory measures the sanitizer, not the gateway: the release build's run judges RSS bounds.
export function sanitized(pid) {
  return /lib(asan|tsan|clang_rt\.(asan|tsan))/.test(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
}

// Rejects with `what` when `promise` has not settled within `ms`.
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Polls `fn` until it returns a truthy value (which is returned) or `timeoutMs` passes (then throws,
// naming `what` and the last value seen). The default is for steps that take milliseconds in the release
// build and must still pass under the sanitizers on a loaded machine (3-5x slower, threads descheduled for
// long stretches): a bound on how long something may take is an assertion of its own, with its own number.
export const EVENTUAL_MS = 10000;
export async function waitFor(fn, { timeoutMs = EVENTUAL_MS, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await sleep(intervalMs);
  }
}

// The CPU time a process has used (user + system, all threads), in clock ticks (/proc/PID/stat).
export function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');  // after "PID (comm) "
  return Number(fields[11]) + Number(fields[12]);                    // utime and stime, fields 14 and 15
}

// Waits until process `pid` has used no CPU for `quietMs` (it has done all the work it was given), or throws
// after `timeoutMs`. Resolves with how long it took.
export async function waitForCpuQuiet(pid, { quietMs = 300, timeoutMs = 10000, what = 'the process to go quiet' } = {}) {
  const started = Date.now();
  let last = cpuTicks(pid);
  let quietSince = Date.now();
  for (;;) {
    await sleep(50);
    const now = cpuTicks(pid);
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) {
      return Date.now() - started;
    }
    if (Date.now() - started >= timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: it kept using CPU`);
  }
}

// Resolves once a TCP connect to 127.0.0.1:`port` is refused (its listening socket closed), or throws after
// `timeoutMs`.
export async function waitForPortClosed(port, { timeoutMs = 5000, what = `port ${port} to close` } = {}) {
  const refused = () => new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => { sock.destroy(); resolve(false); });
    sock.once('error', (err) => resolve(err.code === 'ECONNREFUSED'));
  });
  return waitFor(refused, { timeoutMs, intervalMs: 20, what });
}

// Temp dirs are removed when the test process ends with every test passed; a failure keeps them (and
// WSGW_IT_KEEP=1 always does) so that routes.json, the db and the probe's log can be looked at.
const tempDirs = [];
process.on('exit', (code) => {
  if (process.env.WSGW_IT_KEEP || code || process.exitCode) {
    if (tempDirs.length) process.stderr.write(`wsgw integration: kept ${tempDirs.join(' ')}\n`);
    return;
  }
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

export function makeTempDir(prefix = 'wsgw-it-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

// Where a plugin of that name is built: the sample handlers' dir first, then the test plugins' dir.
export function pluginPath(name) {
  for (const dir of [HANDLERS_DIR, TEST_PLUGINS_DIR]) {
    const p = path.join(dir, `${name}.so`);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`plugin ${name}.so found neither in ${HANDLERS_DIR} nor in ${TEST_PLUGINS_DIR}: build first`);
}

// Lays out dir/handlers with a symlink per plugin and writes dir/routes.json. `routes` is an object (written
// as JSON), a string (written verbatim, for malformed files) or a function of the dir giving either.
export function prepareDir({ dir = makeTempDir(), routes, plugins = [] } = {}) {
  const handlersDir = path.join(dir, 'handlers');
  fs.mkdirSync(handlersDir, { recursive: true });
  for (const name of plugins) {
    const link = path.join(handlersDir, `${name}.so`);
    if (!fs.existsSync(link)) fs.symlinkSync(pluginPath(name), link);
  }
  const routesPath = path.join(dir, 'routes.json');
  const value = typeof routes === 'function' ? routes(dir) : routes;
  if (value !== undefined) fs.writeFileSync(routesPath, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return { dir, handlersDir, routesPath, dbPath: path.join(dir, 'wsgw.db'), eventsPath: path.join(dir, 'events.jsonl') };
}

// The default routes.json of the repository, as the README runs it.
export function defaultRoutes() {
  return fs.readFileSync(path.join(REPO_ROOT, 'routes.json'), 'utf8');
}

// A route table that sends every route listed to one probe instance logging to dir/events.jsonl.
// `twoWay` routes answer the caller; `$default` is included unless `withDefault` is false.
export function probeRoutes({ expression = '$request.body.action', routes = [], withDefault = true } = {}) {
  return (dir) => {
    const table = {
      routeSelectionExpression: expression,
      handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
      routes: {
        $connect: { handler: 'probe' },
        $disconnect: { handler: 'probe' },
      },
    };
    if (withDefault) table.routes.$default = { handler: 'probe', routeResponse: true };
    for (const key of routes) table.routes[key] = { handler: 'probe', routeResponse: true };
    return table;
  };
}

export class Gateway {
  constructor(layout, { nodeId, workers, logLevel }) {
    Object.assign(this, layout);
    this.nodeId = nodeId;
    this.workers = workers;
    this.logLevel = logLevel;
    this.lines = [];      // every stdout line, as parsed JSON (or {unparsed: text})
    this.rawLines = [];   // every stdout line as text
    this.stderr = '';
    this.exit = null;     // {code, signal} once the process ended
  }

  static async start({ routes, plugins = [], dir, nodeId = 'it-node', workers = 4, logLevel = 'info',
                       extraArgs = [], startTimeoutMs = 20000, wrapper = [] } = {}) {
    const layout = prepareDir({ dir, routes, plugins });
    const gw = new Gateway(layout, { nodeId, workers, logLevel });
    gw.wrapper = wrapper;  // a command that runs wsgw, e.g. ['prlimit', '--nofile=256:256', '--'] (it must exec it)
    gw.spawn(extraArgs);
    try {
      const line = await gw.waitForLog((l) => l.msg === 'listening', startTimeoutMs, 'the "listening" log line');
      gw.address = line.address;
      const port = Number(String(line.address).split(':').pop());
      if (!Number.isInteger(port) || port <= 0) throw new Error(`"listening" line has no usable address: ${JSON.stringify(line)}`);
      gw.port = port;
      gw.url = `ws://127.0.0.1:${port}`;
      if (line.management && line.management !== 'off') gw.managementUrl = `http://${line.management}`;
    } catch (err) {
      await gw.stop();
      err.message += `\n--- wsgw stderr ---\n${gw.stderr}\n--- wsgw stdout ---\n${gw.rawLines.join('\n')}`;
      throw err;
    }
    return gw;
  }

  args(extraArgs = []) {
    return ['--routes', this.routesPath, '--handlers', this.handlersDir, '--db', this.dbPath,
      '--listen', '127.0.0.1:0', '--management-listen', '127.0.0.1:0', '--node-id', this.nodeId, '--workers', String(this.workers),
      '--log-level', this.logLevel, ...extraArgs];
  }

  spawn(extraArgs) {
    const [command, ...before] = [...(this.wrapper ?? []), WSGW_BIN];
    this.proc = spawn(command, [...before, ...this.args(extraArgs)], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    // 'exit' can come before the last stdout and stderr bytes are read (the final "stopped" line, a
    // sanitizer report): the exit counts once both pipes have ended, or after a second when something
    // else (a child the gateway left behind) still holds them open.
    const pipesEnded = Promise.all([this.proc.stdout, this.proc.stderr].map((pipe) => new Promise((resolve) => pipe.once('close', resolve))));
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        withTimeout(pipesEnded, 1000, 'the pipes to end').catch(() => {}).then(() => {
          this.exit = { code, signal };
          resolve(this.exit);
        });
      });
      this.proc.on('error', (err) => {
        this.stderr += `spawn failed: ${err.message}\n`;
        this.exit = { code: null, signal: null, error: err };
        resolve(this.exit);
      });
    });
    this.logWaiters = new Set();
    readline.createInterface({ input: this.proc.stdout }).on('line', (text) => {
      this.rawLines.push(text);
      let parsed;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { unparsed: text };
      }
      this.lines.push(parsed);
      for (const w of this.logWaiters) w();
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (chunk) => { this.stderr += chunk; });
  }

  alive() {
    return this.exit === null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  // Resolves with the first stdout line (parsed) for which `pred` holds, looking at past lines too.
  waitForLog(pred, timeoutMs = 5000, what = 'a log line') {
    return new Promise((resolve, reject) => {
      let checked = 0;
      const check = () => {
        for (; checked < this.lines.length; ++checked) {
          if (pred(this.lines[checked])) {
            done();
            resolve(this.lines[checked]);
            return;
          }
        }
        if (this.exit) {
          done();
          reject(new Error(`wsgw exited (${JSON.stringify(this.exit)}) before ${what}; stderr: ${this.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const onExit = () => check();
      const done = () => {
        clearTimeout(timer);
        this.logWaiters.delete(check);
      };
      this.logWaiters.add(check);
      this.exited.then(onExit);
      check();
    });
  }

  // Sends `signal` and waits for the exit; SIGKILL after `timeoutMs` (then `killedAfterTimeout` is set).
  async stop({ signal = 'SIGTERM', timeoutMs = 15000 } = {}) {
    if (!this.proc || this.exit) return this.exit;
    this.proc.kill(signal);
    let exit;
    try {
      exit = await withTimeout(this.exited, timeoutMs, `wsgw to exit after ${signal}`);
    } catch {
      this.killedAfterTimeout = true;
      this.proc.kill('SIGKILL');
      exit = await withTimeout(this.exited, 5000, 'wsgw to exit after SIGKILL');
    }
    // A drain must end cleanly: exit 0, and no sanitizer report (the ASan+UBSan build runs these tests too).
    if (signal === 'SIGTERM') {
      const report = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.exec(this.stderr);
      if (this.killedAfterTimeout || exit.code !== 0 || report) {
        throw new Error(`wsgw did not stop cleanly after SIGTERM (exit ${JSON.stringify(exit)}${this.killedAfterTimeout ? ', killed after timeout' : ''})\n--- stderr ---\n${this.stderr.slice(-4000)}`);
      }
    }
    return exit;
  }

  // The probe's events, parsed, in the order it wrote them.
  events() {
    return readEvents(this.eventsPath);
  }

  errorLines() {
    return this.lines.filter((l) => l.level === 'error');
  }
}

// Runs wsgw with `routes` and `plugins` expecting it to refuse to start: resolves with its exit status,
// stderr, stdout and how long it took. A process still running after `timeoutMs` is killed and reported.
export async function runExpectingExit({ routes, plugins = [], timeoutMs = 5000, extraArgs = [] } = {}) {
  const layout = prepareDir({ routes, plugins });
  const args = ['--routes', layout.routesPath, '--handlers', layout.handlersDir, '--db', layout.dbPath,
    '--listen', '127.0.0.1:0', '--management-listen', '127.0.0.1:0', '--node-id', 'startup-node', '--log-level', 'info',
    ...extraArgs];
  const started = Date.now();
  const proc = spawn(WSGW_BIN, args, { cwd: layout.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (c) => { stdout += c; });
  proc.stderr.setEncoding('utf8').on('data', (c) => { stderr += c; });
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
  let status;
  let timedOut = false;
  try {
    status = await withTimeout(exited, timeoutMs, 'wsgw to exit');
  } catch {
    timedOut = true;
    proc.kill('SIGKILL');
    status = await withTimeout(exited, 5000, 'wsgw to exit after SIGKILL');
  }
  return { ...status, timedOut, stdout, stderr, elapsedMs: Date.now() - started, ...layout };
}

// ---- clients ----------------------------------------------------------------------------------------

// A `ws` client whose incoming messages queue up, so a test can await them one by one.
export class Client {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.errors = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        for (const w of this.waiters.splice(0)) w.reject(new Error(`connection closed (${code} ${this.closeInfo.reason}) while waiting for a message`));
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => {
      const msg = { data: Buffer.from(data), isBinary, text: isBinary ? null : Buffer.from(data).toString('utf8') };
      const w = this.waiters.shift();
      if (w) w.resolve(msg);
      else this.queue.push(msg);
    });
    ws.on('error', (err) => this.errors.push(err));
  }

  // Opens a connection and resolves once it is open; rejects with the HTTP status when refused.
  static open(url, options = {}, timeoutMs = 5000) {
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, ...options });
    const client = new Client(ws);
    return withTimeout(new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (req, res) => {
        res.resume();
        req.destroy();
        reject(Object.assign(new Error(`upgrade refused with HTTP ${res.statusCode}`), { statusCode: res.statusCode }));
      });
      ws.once('error', reject);
    }), timeoutMs, `WebSocket open of ${url}`);
  }

  // Resolves with the next message ({data: Buffer, isBinary, text}).
  next(timeoutMs = 5000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closeInfo) return Promise.reject(new Error(`connection is closed (${this.closeInfo.code}); no message will come`));
    let entry;
    const p = new Promise((resolve, reject) => {
      entry = { resolve, reject };
      this.waiters.push(entry);
    });
    return withTimeout(p, timeoutMs, 'the next message').catch((err) => {
      const i = this.waiters.indexOf(entry);
      if (i >= 0) this.waiters.splice(i, 1);
      throw err;
    });
  }

  // The next message, which must be a text frame.
  async nextText(timeoutMs = 5000) {
    const msg = await this.next(timeoutMs);
    if (msg.isBinary) throw new Error(`expected a text frame, got binary ${msg.data.toString('hex')}`);
    return msg.text;
  }

  // The next `n` messages, all within `timeoutMs` in total.
  async collect(n, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    const out = [];
    for (let i = 0; i < n; ++i) {
      try {
        out.push(await this.next(Math.max(1, deadline - Date.now())));
      } catch (err) {
        err.message += ` (after ${out.length} of ${n} messages)`;
        throw err;
      }
    }
    return out;
  }

  async collectTexts(n, timeoutMs = 5000) {
    const msgs = await this.collect(n, timeoutMs);
    return msgs.map((m) => (m.isBinary ? `<binary ${m.data.toString('hex')}>` : m.text));
  }

  // Throws if any message arrives within `ms`.
  async expectSilence(ms) {
    await sleep(ms);
    if (this.queue.length) throw new Error(`expected no message, got ${JSON.stringify(this.queue.map((m) => m.text ?? m.data.toString('hex')))}`);
  }

  send(data, options) {
    this.ws.send(data, options);
  }

  // Sends and resolves with the next text frame.
  async request(data, timeoutMs = 5000) {
    this.send(data);
    return this.nextText(timeoutMs);
  }

  async close(code, reason, timeoutMs = 5000) {
    if (this.closeInfo) return this.closeInfo;
    if (code === undefined) this.ws.close();
    else this.ws.close(code, reason);
    return this.waitClosed(timeoutMs);
  }

  waitClosed(timeoutMs = 5000) {
    return withTimeout(this.closed, timeoutMs, 'the connection to close');
  }

  terminate() {
    this.ws.terminate();
  }
}

// Opens `url` expecting the upgrade to be refused; resolves with {status, headers, body}.
export function openExpectingRefusal(url, options = {}, timeoutMs = 5000) {
  const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, ...options });
  ws.on('error', () => {});
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate();
      reject(new Error(`expected the upgrade of ${url} to be refused, but it opened`));
    });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      const finish = () => {
        req.destroy();
        resolve({ status: res.statusCode, headers: res.headers, body });
      };
      res.on('end', finish);
      res.on('error', finish);
      res.on('aborted', finish);
    });
  }), timeoutMs, `the refusal of ${url}`);
}

// Sends `request` verbatim on a plain TCP socket and resolves with the parsed HTTP response
// ({status, headers (lower-case names), body, raw}) once the head and Content-Length bytes have come,
// or the server closed.
export function rawHttp(port, request, timeoutMs = 5000) {
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = () => {
      if (settled) return;
      const parsed = parseHttpResponse(buf);
      if (!parsed) {
        settled = true;
        sock.destroy();
        reject(new Error(`connection ended without a complete HTTP response: ${JSON.stringify(buf.toString('latin1'))}`));
        return;
      }
      settled = true;
      sock.destroy();
      resolve(parsed);
    };
    sock.on('connect', () => sock.write(request));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const parsed = parseHttpResponse(buf);
      if (parsed && parsed.complete) finish();
    });
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', (err) => {
      if (parseHttpResponse(buf)) finish();
      else if (!settled) { settled = true; reject(err); }
    });
  }), timeoutMs, 'a raw HTTP response');
}

export function parseHttpResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(head[0]);
  if (!m) return null;
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const bodyStart = end + 4;
  const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : null;
  const available = buf.length - bodyStart;
  const status = Number(m[1]);
  const bodyLength = status === 101 ? 0 : length === null ? available : Math.min(length, available);
  const body = buf.subarray(bodyStart, bodyStart + bodyLength);
  return {
    status, reason: m[2] ?? '', headers, body: body.toString('utf8'),
    complete: status === 101 || (length !== null && available >= length), rest: buf.subarray(bodyStart + bodyLength),
  };
}

// ---- raw WebSocket frames ----------------------------------------------------------------------------

export function newWebSocketKey() {
  return crypto.randomBytes(16).toString('base64');
}

export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

// A client frame (always masked, RFC 6455 5.3).
export function maskedFrame(opcode, payload, fin = true) {
  const data = Buffer.from(payload);
  let header;
  if (data.length < 126) {
    header = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | data.length]);
  } else if (data.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(data.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(data.length), 2);
  }
  const mask = crypto.randomBytes(4);
  const masked = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; ++i) masked[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([header, mask, masked]);
}

// Splits server frames off the front of `buf`: {frames: [{fin, opcode, payload}], rest}.
export function parseServerFrames(buf) {
  const frames = [];
  let off = 0;
  for (;;) {
    if (buf.length - off < 2) break;
    const b0 = buf[off];
    const b1 = buf[off + 1];
    let len = b1 & 0x7f;
    let pos = off + 2;
    if (len === 126) {
      if (buf.length - pos < 2) break;
      len = buf.readUInt16BE(pos);
      pos += 2;
    } else if (len === 127) {
      if (buf.length - pos < 8) break;
      len = Number(buf.readBigUInt64BE(pos));
      pos += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    let mask = null;
    if (masked) {
      if (buf.length - pos < 4) break;
      mask = buf.subarray(pos, pos + 4);
      pos += 4;
    }
    if (buf.length - pos < len) break;
    let payload = Buffer.from(buf.subarray(pos, pos + len));
    if (mask) for (let i = 0; i < payload.length; ++i) payload[i] ^= mask[i & 3];
    frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload, masked });
    off = pos + len;
  }
  return { frames, rest: buf.subarray(off) };
}

// A WebSocket over a raw TCP socket: the handshake by hand, then frames as bytes, so a test can send what
// no well-behaved client library would.
export class RawWebSocket {
  // `headers`: more request header lines (e.g. 'Sec-WebSocket-Extensions: permessage-deflate').
  static async open(port, { path: p = '/', timeoutMs = 5000, headers = [] } = {}) {
    const raw = new RawWebSocket();
    raw.sock = net.connect({ host: '127.0.0.1', port });
    raw.buf = Buffer.alloc(0);
    raw.frames = [];
    raw.wake = null;
    raw.closedSocket = false;
    const key = newWebSocketKey();
    raw.sock.on('error', (err) => { raw.error = err; if (raw.wake) raw.wake(); });
    raw.sock.on('data', (chunk) => {
      raw.buf = Buffer.concat([raw.buf, chunk]);
      if (raw.response) raw.drainFrames();
      if (raw.wake) raw.wake();
    });
    raw.sock.on('close', () => { raw.closedSocket = true; if (raw.wake) raw.wake(); });
    await withTimeout(new Promise((resolve, reject) => {
      raw.sock.on('connect', resolve);
      raw.sock.on('error', reject);
    }), timeoutMs, 'TCP connect');
    raw.sock.write(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: raw-it\r\n` +
      headers.map((h) => `${h}\r\n`).join('') + '\r\n');
    await raw.until(() => raw.buf.indexOf('\r\n\r\n') >= 0, timeoutMs, 'the upgrade response');
    const end = raw.buf.indexOf('\r\n\r\n');
    raw.response = parseHttpResponse(raw.buf.subarray(0, end + 4));
    raw.buf = raw.buf.subarray(end + 4);
    raw.expectedAccept = acceptFor(key);
    raw.drainFrames();
    return raw;
  }

  drainFrames() {
    const { frames, rest } = parseServerFrames(this.buf);
    this.frames.push(...frames);
    this.buf = rest;
  }

  until(pred, timeoutMs, what) {
    return withTimeout(new Promise((resolve, reject) => {
      const check = () => {
        if (pred()) { this.wake = null; resolve(); } else if (this.closedSocket) { this.wake = null; reject(new Error(`socket closed before ${what}`)); }
      };
      this.wake = check;
      check();
    }), timeoutMs, what);
  }

  write(bytes) {
    this.sock.write(bytes);
  }

  // The complete data messages read so far, {opcode, payload}, each reassembled from its frames (the gateway
  // sends a message over 32 KiB as 32 KiB frames, as AWS does); control frames between them are skipped.
  messages() {
    const out = [];
    let first = null;
    let parts = [];
    for (const f of this.frames) {
      if (f.opcode === 1 || f.opcode === 2) { first = f; parts = [f.payload]; } else if (f.opcode === 0 && first) parts.push(f.payload);
      else continue;
      if (f.fin) { out.push({ opcode: first.opcode, payload: Buffer.concat(parts) }); first = null; }
    }
    return out;
  }

  // Resolves with the first close frame the server sent: {code, reason}.
  async closeFrame(timeoutMs = 5000) {
    await this.until(() => this.frames.some((f) => f.opcode === 8), timeoutMs, 'a close frame');
    const f = this.frames.find((fr) => fr.opcode === 8);
    return { code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null, reason: f.payload.subarray(2).toString('utf8') };
  }

  destroy() {
    this.sock.destroy();
  }
}

// A RawWebSocket that has been answered 101, its writes sent at once (no Nagle delay between pieces).
export async function openRawUpgraded(port) {
  const raw = await RawWebSocket.open(port);
  if (raw.response.status !== 101) throw new Error(`upgrade answered ${raw.response.status}, not 101`);
  raw.sock.setNoDelay(true);
  return raw;
}

// Opens `count` TCP connections to `port` that send nothing, and returns them with how long each stayed open
// (`closedAfterMs`, null while open), updated as they close.
export async function openSilentSockets(port, count, localAddress = '127.0.0.1') {
  const sockets = [];
  for (let i = 0; i < count; i++) {
    const entry = await new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port, localAddress });
      const e = { sock, closedAfterMs: null };
      let connected = false;
      sock.once('connect', () => {
        connected = true;
        const opened = Date.now();
        sock.once('close', () => { e.closedAfterMs = Date.now() - opened; });
        resolve(e);
      });
      sock.on('error', (err) => { if (!connected) reject(err); });  // after the connect: a reset is a close
      sock.resume();
    });
    sockets.push(entry);
  }
  return sockets;
}

// One unlabelled metric of GET /metrics on the gateway's management listener (plain HTTP); null when absent.
export async function metricValue(gw, name) {
  const text = await (await fetch(`${gw.managementUrl}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

// ---- descriptor exhaustion -------------------------------------------------------------------------------

const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100; } catch { return 100; }
})();

// The CPU time process `pid` has used so far, in seconds (user and system).
export function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');  // after "pid (comm) ": field 3 onwards
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;      // utime and stime, fields 14 and 15
}

// Opens `n` TCP connections to `port` without waiting for any (the last ones sit in the backlog).
export function flood(port, n) {
  const socks = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    socks.push(s);
  }
  return socks;
}

// ---- the connection table and the probe's event log ----------------------------------------------------

// Runs `sql` with the sqlite3 CLI against `db` (read by another process while wsgw runs: WAL) and returns
// the rows of its -json output.
export async function sqliteRows(db, sql) {
  const { stdout } = await execFileP('sqlite3', ['-json', '-cmd', '.timeout 3000', db, sql], { timeout: 10000 });
  return stdout.trim() ? JSON.parse(stdout) : [];
}

// The IDs in the SQLite store's journal of closed connections whose row's deletion is not committed yet:
// its two segments, <db>.disconnected and <db>.disconnected-1 (either may be missing).
export function journalledIds(db) {
  const ids = [];
  for (const file of [`${db}.disconnected`, `${db}.disconnected-1`]) {
    try {
      ids.push(...fs.readFileSync(file, 'utf8').split('\n').filter(Boolean));
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
  }
  return ids;
}
export const journalExists = (db) => fs.existsSync(`${db}.disconnected`) || fs.existsSync(`${db}.disconnected-1`);

export function readEvents(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return [];
    throw err;
  }
  const events = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      events.push(JSON.parse(line));
    } catch {
      // The last line may be half-written while a handler runs; the next read sees it whole. A line a
      // process killed with SIGKILL left half-written (a write to a file can stop part-way at a fatal
      // signal) has the next process's first event appended to it: that event, whole, is still read.
      for (let at = line.indexOf('{"', 1); at > 0; at = line.indexOf('{"', at + 1)) {
        try {
          events.push(JSON.parse(line.slice(at)));
          break;
        } catch {
          // not where the appended event starts: try the next opening brace
        }
      }
    }
  }
  return events;
}

export const ctx = (ev) => ev.requestContext ?? {};

// The probe events of one connection, optionally of one event type.
export function eventsOf(file, connectionId, eventType) {
  return readEvents(file).filter((e) => ctx(e).connectionId === connectionId && (!eventType || ctx(e).eventType === eventType));
}

export function waitForEvent(file, pred, { timeoutMs = EVENTUAL_MS, what = 'a probe event' } = {}) {
  return waitFor(() => readEvents(file).find(pred), { timeoutMs, what });
}

// Asks the probe for the caller's connection id (the probe must serve the route "whoami" lands on).
export async function whoami(client) {
  const id = await client.request(JSON.stringify({ action: 'whoami' }));
  if (!/^[A-Za-z0-9_-]{16,}$/.test(id)) throw new Error(`whoami answered ${JSON.stringify(id)}, not a connection id`);
  return id;
}

// A probe gateway for a describe block, with one client connected to it that a test can check is still
// served: registers the block's before and after hooks; `gw` and `bystander` are set once before() has run.
export function probeGatewayWithBystander(options = {}) {
  const env = { gw: null, bystander: null };
  before(async () => {
    env.gw = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'], ...options });
    env.bystander = await Client.open(env.gw.url);
    await whoami(env.bystander);
  });
  after(async () => {
    env.bystander?.ws.terminate();
    await env.gw?.stop();
  });
  return env;
}

// AWS's error frame, spaced exactly as AWS spaces it.
export function errorFrameRegex(message) {
  const m = message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\{"message": "${m}", "connectionId":"([A-Za-z0-9_-]+)", "requestId":"([^"]+)"\\}$`);
}
