// wsgw's Lambda runtime client for Node.js (SPEC section 11): loads the handler named by _HANDLER
// ("file.export", the file relative to LAMBDA_TASK_ROOT, .mjs/.js/.cjs) and serves invocations from the
// Lambda Runtime API at AWS_LAMBDA_RUNTIME_API, one at a time, as Lambda's own Node.js runtime does:
// async handlers and callback-style handlers, the result serialised as JSON, a thrown error reported as
// {errorType, errorMessage, stackTrace}. Node's built-ins only.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const [apiHost, apiPort] = api.split(':');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const base = '/2018-06-01/runtime';

function request(method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(body);
    const req = http.request({
      host: apiHost, port: Number(apiPort), method, path: base + urlPath, agent,
      headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length, ...headers } : headers,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

function errorBody(err) {
  const e = err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
  const stack = typeof e.stack === 'string' ? e.stack.split('\n').slice(1).map((l) => l.trim()) : [];
  return JSON.stringify({ errorType: e.name || 'Error', errorMessage: e.message ?? String(e), stackTrace: stack });
}

async function postError(urlPath, err, type) {
  const body = errorBody(err);
  await request('POST', urlPath, body, { 'Lambda-Runtime-Function-Error-Type': type ?? ((err && err.name) || 'Error') });
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

for (;;) {
  const next = await request('GET', '/invocation/next');
  if (next.status !== 200) {
    console.error(`wsgw runtime: /invocation/next answered ${next.status}: ${next.body}`);
    process.exit(1);
  }
  const id = next.headers['lambda-runtime-aws-request-id'];
  process.env._X_AMZN_TRACE_ID = next.headers['lambda-runtime-trace-id'] ?? '';
  currentId = id;
  let event;
  try {
    event = JSON.parse(next.body);
  } catch (err) {
    await postError(`/invocation/${id}/error`, err, 'Runtime.InvalidEvent');
    currentId = null;
    continue;
  }
  // A handler whose promise waits on nothing would let Node's event loop empty and the process end with
  // "unsettled top-level await": the invocation keeps the loop alive until it settles (or times out).
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    const result = await runHandler(handler, event, makeContext(next.headers));
    const body = JSON.stringify(result === undefined ? null : result);
    await request('POST', `/invocation/${id}/response`, body === undefined ? 'null' : body);
  } catch (err) {
    await postError(`/invocation/${id}/error`, err);
  } finally {
    clearInterval(keepAlive);
  }
  currentId = null;
}
