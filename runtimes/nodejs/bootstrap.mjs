// wsgw's Lambda runtime client for Node.js (docs/lambda.md): loads the handler named by _HANDLER
// ("file.export", the file relative to LAMBDA_TASK_ROOT, .mjs/.js/.cjs) and serves invocations from the
// Lambda Runtime API at AWS_LAMBDA_RUNTIME_API, one at a time, as Lambda's own Node.js runtime does:
// async handlers and callback-style handlers, the result serialised as JSON, a thrown error reported as
// {errorType, errorMessage, stackTrace}. Node's built-ins only.
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const [apiHost, apiPort] = api.split(':');
const base = '/2018-06-01/runtime';

// One keep-alive HTTP/1.1 connection to the Runtime API, written by hand rather than with node:http: an
// invocation is two requests, and node:http's request and response objects were most of the runtime's
// time per invocation. Requests may be pipelined (the response and the next `next` leave together);
// answers come back in order, each with a Content-Length (the gateway's Runtime API always sends one).
class RuntimeApiClient {
  constructor(host, port) {
    this.waiting = [];  // resolvers of the requests sent, oldest first
    this.buffer = Buffer.alloc(0);
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk) => this.onData(chunk));
    this.socket.on('error', (err) => this.failAll(err));
    this.socket.on('close', () => this.failAll(new Error(`the Runtime API at ${host}:${port} closed the connection`)));
  }

  request(method, urlPath, body, headers = {}) {
    const data = body === undefined ? null : Buffer.from(body);
    let head = `${method} ${base}${urlPath} HTTP/1.1\r\nHost: ${api}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    if (data) head += `Content-Type: application/json\r\nContent-Length: ${data.length}\r\n`;
    head += '\r\n';
    return new Promise((resolve, reject) => {
      if (this.failure) { reject(this.failure); return; }
      this.waiting.push({ resolve, reject });
      this.socket.write(data ? Buffer.concat([Buffer.from(head, 'latin1'), data]) : head);
    });
  }

  onData(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.buffer.toString('latin1', 0, end).split('\r\n');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
      const headers = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length']);
      if (!status || !Number.isInteger(length) || length < 0) {
        this.failAll(new Error(`the Runtime API sent an answer this runtime cannot read: ${JSON.stringify(lines[0])}`));
        this.socket.destroy();
        return;
      }
      if (this.buffer.length < end + 4 + length) return;
      const body = this.buffer.toString('utf8', end + 4, end + 4 + length);
      this.buffer = this.buffer.subarray(end + 4 + length);
      const waiter = this.waiting.shift();
      if (waiter) waiter.resolve({ status: Number(status[1]), headers, body });
    }
  }

  failAll(err) {
    this.failure ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}

const client = new RuntimeApiClient(apiHost, Number(apiPort));
const request = (method, urlPath, body, headers) => client.request(method, urlPath, body, headers);

function errorBody(err) {
  const e = err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
  const stack = typeof e.stack === 'string' ? e.stack.split('\n').slice(1).map((l) => l.trim()) : [];
  return JSON.stringify({ errorType: e.name || 'Error', errorMessage: e.message ?? String(e), stackTrace: stack });
}

function postError(urlPath, err, type) {
  const body = errorBody(err);
  return request('POST', urlPath, body, { 'Lambda-Runtime-Function-Error-Type': type ?? ((err && err.name) || 'Error') });
}

async function loadHandler() {
  const spec = process.env._HANDLER ?? '';
  const dot = spec.lastIndexOf('.');
  if (dot <= 0) throw Object.assign(new Error(`Bad handler ${spec}: expected file.export`), { name: 'Runtime.MalformedHandlerName' });
  const file = spec.slice(0, dot);
  const exportName = spec.slice(dot + 1);
  const root = process.env.LAMBDA_TASK_ROOT ?? process.cwd();
  const candidates = ['.mjs', '.js', '.cjs', ''].map((ext) => path.resolve(root, file + ext));
  const found = candidates.find((p) => fs.existsSync(p) && fs.statSync(p).isFile());
  if (!found) {
    throw Object.assign(new Error(`Cannot find module '${file}' in ${root} (tried .mjs, .js, .cjs)`), { name: 'Runtime.ImportModuleError' });
  }
  const mod = await import(pathToFileURL(found).href);
  let fn = mod[exportName];
  if (typeof fn !== 'function' && mod.default && typeof mod.default[exportName] === 'function') fn = mod.default[exportName];
  if (typeof fn !== 'function') {
    throw Object.assign(new Error(`${file}.${exportName} is undefined or not exported`), { name: 'Runtime.HandlerNotFound' });
  }
  return fn;
}

function makeContext(headers) {
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  return context;
}

// Runs the handler: its promise if it returns one, else its callback (a handler declaring three
// parameters), else what it returned.
function runHandler(handler, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err, value) => {
      if (settled) return;
      settled = true;
      if (err !== undefined && err !== null) reject(err);
      else resolve(value);
    };
    context.done = settle;
    context.succeed = (value) => settle(null, value);
    context.fail = (err) => settle(err ?? new Error('failed'));
    let returned;
    try {
      returned = handler(event, context, settle);
    } catch (err) {
      settle(err);
      return;
    }
    if (returned && typeof returned.then === 'function') returned.then((v) => settle(null, v), (e) => settle(e ?? new Error('rejected')));
    else if (handler.length < 3) settle(null, returned);
  });
}

let currentId = null;

// As Lambda: an error nobody caught during an invocation fails it and ends the process.
async function fatal(err) {
  try {
    if (currentId) await postError(`/invocation/${currentId}/error`, err, 'Runtime.UnhandledPromiseRejection');
    else await postError('/init/error', err, 'Runtime.Unknown');
  } catch { /* the gateway notices the exit anyway */ }
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(129);
}
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

let handler;
try {
  handler = await loadHandler();
} catch (err) {
  console.error(err && err.stack ? err.stack : String(err));
  await postError('/init/error', err, err.name && err.name.startsWith('Runtime.') ? err.name : 'Runtime.ImportModuleError').catch(() => {});
  process.exit(1);
}

// The answer to one invocation and the request for the next leave in one write (pipelined).
let next = await request('GET', '/invocation/next');
for (;;) {
  if (next.status !== 200) {
    console.error(`wsgw runtime: /invocation/next answered ${next.status}: ${next.body}`);
    process.exit(1);
  }
  const id = next.headers['lambda-runtime-aws-request-id'];
  process.env._X_AMZN_TRACE_ID = next.headers['lambda-runtime-trace-id'] ?? '';
  currentId = id;
  let answered;
  let event;
  try {
    event = JSON.parse(next.body);
  } catch (err) {
    answered = postError(`/invocation/${id}/error`, err, 'Runtime.InvalidEvent');
  }
  if (!answered) {
    // A handler whose promise waits on nothing would let Node's event loop empty and the process end with
    // "unsettled top-level await": the invocation keeps the loop alive until it settles (or times out).
    const keepAlive = setInterval(() => {}, 1 << 30);
    try {
      const result = await runHandler(handler, event, makeContext(next.headers));
      const body = JSON.stringify(result === undefined ? null : result);
      answered = request('POST', `/invocation/${id}/response`, body === undefined ? 'null' : body);
    } catch (err) {
      answered = postError(`/invocation/${id}/error`, err);
    } finally {
      clearInterval(keepAlive);
    }
  }
  currentId = null;
  const following = request('GET', '/invocation/next');
  await answered;
  next = await following;
}
