// "lambda" handlers (docs/lambda.md): real node and python3 function processes behind the
// real gateway, through the Lambda Runtime API it serves (the AWS chat sample, whose callbacks use the
// AWS SDK, is in lambda-callbacks.test.mjs). A Python function; a function that throws, one that exits
// mid-invocation, one past its timeout and one over its memoryMb (each an Internal server error, the next invocation served by a
// new process); four slow invocations overlapping with concurrency 4; Lambda's environment; function
// output as log lines with the invocation's request ID; a function that cannot start refuses the start;
// an edit of a function's file reloads it (new processes for new invocations, the running one finishes);
// out of descriptors, the Runtime API listener pauses instead of spinning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { Client, cpuSeconds, flood, openExpectingRefusal, runExpectingExit, sleep, waitFor } from './harness.mjs';
import { oneNodeFunction, writeFunction } from './lambda-functions.mjs';
import { startGateway } from './started-gateways.mjs';

const internalError = (text) => JSON.parse(text).message === 'Internal server error';

test('a Python function: the result mapping, Lambda\'s environment and its own environment', async () => {
  const gw = await startGateway({
    routes: (dir) => {
      const directory = writeFunction(dir, 'py', {
        'handler.py': [
          'import json, os',
          'def main(event, context):',
          '    body = json.loads(event["body"])',
          '    if body.get("what") == "env":',
          '        names = ["GREETING", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_REGION", "_HANDLER",',
          '                 "LAMBDA_TASK_ROOT", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "TZ", "AWS_ACCESS_KEY_ID"]',
          '        env = {n: os.environ.get(n) for n in names}',
          '        env["requestIdMatches"] = context.aws_request_id == event["requestContext"]["requestId"]',
          '        env["remainingMs"] = context.get_remaining_time_in_millis()',
          '        env["arn"] = context.invoked_function_arn',
          '        return {"statusCode": 200, "body": json.dumps(env)}',
          '    print("python says", body.get("what"))',
          '    return "plain " + str(body.get("what"))',
          '',
        ].join('\n'),
      });
      return {
        routeSelectionExpression: '$request.body.action',
        handlers: { py: { lambda: { runtime: 'python', handler: 'handler.main', directory, memoryMb: 256, environment: { GREETING: 'hej' } } } },
        routes: { $default: { handler: 'py', routeResponse: true, timeoutMs: 5000 } },
      };
    },
  });
  const c = await Client.open(gw.url);
  const env = JSON.parse(await c.request(JSON.stringify({ what: 'env' })));
  assert.equal(env.GREETING, 'hej');
  assert.equal(env.AWS_LAMBDA_FUNCTION_NAME, 'py');
  assert.equal(env.AWS_LAMBDA_FUNCTION_VERSION, '$LATEST');
  assert.equal(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, '256');
  assert.equal(env._HANDLER, 'handler.main');
  assert.equal(env.LAMBDA_TASK_ROOT, path.join(gw.dir, 'fns', 'py'));
  assert.ok(env.AWS_REGION);
  assert.ok(env.AWS_ACCESS_KEY_ID);
  assert.equal(env.TZ, ':UTC');
  assert.equal(env.requestIdMatches, true);
  assert.ok(env.remainingMs > 0 && env.remainingMs <= 5000, `remaining ${env.remainingMs}`);
  assert.match(env.arn, /^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:py$/);
  assert.equal(await c.request(JSON.stringify({ what: 'x' })), 'plain x');
  const line = await gw.waitForLog((l) => l.function === 'py' && l.msg === 'python says x', 5000, "the python function's print");
  assert.match(line.requestId, /^[A-Za-z0-9_-]{10,}$/);
  await c.close();
});

const FAILING_FUNCTION = `
import { spawn } from 'node:child_process';
export const handler = async (event) => {
  const { what } = JSON.parse(event.body);
  if (what === 'forkexit') {
    const child = spawn('sleep', ['300'], { stdio: 'ignore' });  // in the function's process group
    setTimeout(() => process.exit(3), 50);
    return { statusCode: 200, body: String(child.pid) };
  }
  if (what === 'huge') return { statusCode: 200, body: 'h'.repeat(7 << 20) };
  if (what === 'throw') throw new TypeError('thrown on purpose');
  if (what === 'exit') { setTimeout(() => process.exit(3), 10); return new Promise(() => {}); }
  if (what === 'hang') return new Promise((resolve) => setTimeout(() => resolve('too late'), 60000));
  if (what === 'grow') {
    const held = [];
    for (let i = 0; i < 64; ++i) {
      held.push(Buffer.alloc(16 << 20, 1));
      await new Promise((r) => setTimeout(r, 20));
    }
    return String(held.length);
  }
  return { statusCode: 200, body: String(process.pid) };
};
`;

test('a throw, an exit mid-invocation, a timeout and memoryMb: Internal server error, then a new process serves', async () => {
  const gw = await startGateway({
    routes: (dir) => {
      const directory = writeFunction(dir, 'failing', { 'index.mjs': FAILING_FUNCTION });
      return {
        routeSelectionExpression: '$request.body.action',
        handlers: { failing: { lambda: { runtime: 'nodejs', handler: 'index.handler', directory, concurrency: 1, memoryMb: 160 } } },
        routes: {
          $default: { handler: 'failing', routeResponse: true, timeoutMs: 15000 },
          hang: { handler: 'failing', routeResponse: true, timeoutMs: 1500 },
        },
      };
    },
  });
  const c = await Client.open(gw.url);
  const pidOf = async () => Number(await c.request(JSON.stringify({ what: 'pid' })));
  let pid = await pidOf();
  assert.ok(pid > 0);
  for (const what of ['throw', 'exit', 'hang', 'grow']) {
    const answer = await c.request(JSON.stringify({ action: what, what }), 20000);
    assert.ok(internalError(answer), `${what}: ${answer}`);
    const next = await pidOf();
    assert.notEqual(next, pid, `${what}: the next invocation ran in a new process`);
    pid = next;
  }
  const errors = gw.lines.filter((l) => l.msg === 'integration error' && l.handler === 'failing').map((l) => l.error);
  assert.ok(errors.some((e) => /TypeError: thrown on purpose/.test(e)), errors.join('\n'));
  assert.ok(errors.some((e) => /Runtime exited during the invocation: function process exited with status 3/.test(e)), errors.join('\n'));
  assert.ok(errors.some((e) => /Task timed out after 1\.5\d seconds/.test(e)), errors.join('\n'));
  assert.ok(errors.some((e) => /over memoryMb/.test(e)), errors.join('\n'));
  await c.close();
});

// A function that exits by itself leaves nothing behind in its process group; an answer over Lambda's 6 MB
// fails its invocation at once with the reason (not at its timeout, nor as a reset connection).
test('a child left by a function that exits is ended with it; an answer over 6 MB fails at once, saying so', async () => {
  const gw = await startGateway({ routes: oneNodeFunction('failing', FAILING_FUNCTION, 20000) });
  const c = await Client.open(gw.url);
  const childPid = Number(await c.request(JSON.stringify({ what: 'forkexit' })));
  assert.ok(childPid > 0);
  const gone = () => {
    try {
      process.kill(childPid, 0);
    } catch {
      return true;
    }
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${childPid}/stat`, 'utf8'));  // killed, not yet reaped by init
  };
  await waitFor(gone, { timeoutMs: 10000, what: `the function's child ${childPid} to end with it` });
  const started = Date.now();
  const answer = await c.request(JSON.stringify({ what: 'huge' }), 15000);
  assert.ok(internalError(answer), answer.slice(0, 200));
  assert.ok(Date.now() - started < 10000, 'failed at once, not at the 20 s timeout');
  const errors = gw.lines.filter((l) => l.msg === 'integration error' && l.handler === 'failing').map((l) => l.error);
  assert.ok(errors.some((e) => /answer is larger than 6 MB/.test(e)), errors.join('\n'));
  await c.close();
});

test('$connect: a function error refuses the upgrade with 502; a proxy result\'s status is the answer', async () => {
  const gw = await startGateway({
    routes: (dir) => {
      const directory = writeFunction(dir, 'gate', {
        'gate.js': `exports.handler = (event, context, callback) => {
  const q = event.queryStringParameters || {};
  if (q.fail) return callback(new Error('no'));
  callback(null, { statusCode: q.status ? Number(q.status) : 200 });
};
`,
      });
      return {
        routeSelectionExpression: '$request.body.action',
        handlers: { gate: { lambda: { runtime: 'nodejs', handler: 'gate.handler', directory } } },
        routes: { $connect: { handler: 'gate' }, $default: { handler: 'gate' } },
      };
    },
  });
  assert.equal((await openExpectingRefusal(`${gw.url}/?fail=1`)).status, 502);
  assert.equal((await openExpectingRefusal(`${gw.url}/?status=401`)).status, 401);
  const ok = await Client.open(`${gw.url}/?status=204`);
  await ok.close();
});

test('concurrency 4: four slow invocations run at the same time in four processes', async () => {
  const gw = await startGateway({
    workers: 6,
    routes: (dir) => {
      const directory = writeFunction(dir, 'slow', {
        'slow.mjs': `export const handler = async () => {
  const startedAt = Date.now();
  await new Promise((r) => setTimeout(r, 800));
  return JSON.stringify({ pid: process.pid, startedAt, endedAt: Date.now() });
};
`,
      });
      return {
        routeSelectionExpression: '$request.body.action',
        handlers: { slow: { lambda: { runtime: 'nodejs', handler: 'slow.handler', directory, concurrency: 4 } } },
        routes: { $default: { handler: 'slow', routeResponse: true, timeoutMs: 20000 } },
      };
    },
  });
  const clients = await Promise.all([0, 1, 2, 3].map(() => Client.open(gw.url)));
  // Every process must be up before the measure: the start-up waits for the first one only.
  await waitFor(() => gw.lines.filter((l) => l.msg === 'lambda function process ready' && l.function === 'slow').length >= 4,
    { timeoutMs: 15000, what: 'four processes ready' });
  const answers = await Promise.all(clients.map((c) => c.request('go', 20000)));
  const runs = answers.map((a) => JSON.parse(a));
  assert.equal(new Set(runs.map((r) => r.pid)).size, 4, `four processes: ${answers.join(' ')}`);
  // Overlap from the functions' own timestamps: each started before any of them ended.
  const lastStart = Math.max(...runs.map((r) => r.startedAt));
  const firstEnd = Math.min(...runs.map((r) => r.endedAt));
  assert.ok(lastStart < firstEnd, `the four invocations overlap: ${answers.join(' ')}`);
  await Promise.all(clients.map((c) => c.close()));
});

test('a function that cannot start refuses the gateway start, naming the handler and why', async () => {
  const result = await runExpectingExit({
    routes: (dir) => {
      const directory = writeFunction(dir, 'broken', { 'app.mjs': 'export const handler = async () => 1;\n' });
      return {
        routeSelectionExpression: '$request.body.action',
        handlers: { broken: { lambda: { runtime: 'nodejs', handler: 'nothere.handler', directory } } },
        routes: { $default: { handler: 'broken' } },
      };
    },
    timeoutMs: 20000,
  });
  assert.notEqual(result.code, 0);
  assert.match(result.stderr + result.stdout, /\/handlers\/broken\/lambda: function 'broken': the function failed to initialise: Runtime\.ImportModuleError: Cannot find module 'nothere'/);
});

test('hot reload: an edit of the function file starts new processes for new invocations; the running one finishes; no connection drops', async () => {
  const version = (tag) => `export const handler = async (event) => {
  const { action, ms } = JSON.parse(event.body);
  if (action === 'slow') {
    console.log('slow started');
    await new Promise((r) => setTimeout(r, ms));
  }
  return '${tag}:' + action + ':' + process.pid;
};
`;
  let fnFile;
  const gw = await startGateway({
    routes: (dir) => {
      const directory = writeFunction(dir, 'edited', { 'app.mjs': version('v1') });
      fnFile = path.join(dir, directory, 'app.mjs');
      return {
        routeSelectionExpression: '$request.body.action',
        handlers: { edited: { lambda: { runtime: 'nodejs', handler: 'app.handler', directory, concurrency: 1 } } },
        routes: { $default: { handler: 'edited', routeResponse: true, timeoutMs: 20000 } },
      };
    },
  });
  const busy = await Client.open(gw.url);
  const other = await Client.open(gw.url);
  const [tag1, , pid1] = (await other.request(JSON.stringify({ action: 'hello' }))).split(':');
  assert.equal(tag1, 'v1');

  // An invocation runs in the v1 process while the file changes.
  busy.send(JSON.stringify({ action: 'slow', ms: 3000 }));
  await gw.waitForLog((l) => l.function === 'edited' && l.msg === 'slow started', 10000, 'the slow invocation running');
  fs.writeFileSync(fnFile, version('v2'));
  await gw.waitForLog((l) => l.msg === 'route table reloaded' && /edited/.test(l.loaded ?? ''), 20000, 'the reload after the edit');

  // The next message gets the new behaviour from a new process, on the same open connection...
  const [tag2, , pid2] = (await other.request(JSON.stringify({ action: 'hello' }), 10000)).split(':');
  assert.equal(tag2, 'v2');
  assert.notEqual(pid2, pid1);
  // ...while the invocation that started before the edit finishes in the old process.
  const [tagSlow, actionSlow, pidSlow] = (await busy.nextText(10000)).split(':');
  assert.deepEqual([tagSlow, actionSlow, pidSlow], ['v1', 'slow', pid1]);
  const [tag3] = (await busy.request(JSON.stringify({ action: 'again' }), 10000)).split(':');
  assert.equal(tag3, 'v2');
  assert.equal(busy.ws.readyState, 1, 'still open');
  assert.equal(other.ws.readyState, 1, 'still open');
  assert.ok(!gw.lines.some((l) => l.msg === 'integration error'), 'no invocation failed');
  await busy.close();
  await other.close();
});

test('out of descriptors, a function\'s Runtime API listener pauses instead of spinning a core; the function serves on', { timeout: 90000 }, async () => {
  const gw = await startGateway({
    routes: (dir) => ({
      routeSelectionExpression: '$request.body.action',
      handlers: { py: { lambda: { runtime: 'python', handler: 'handler.main', directory: writeFunction(dir, 'py', {
        'handler.py': 'def main(event, context):\n    return "got " + event["body"]\n' }), concurrency: 1 } } },
      routes: { $default: { handler: 'py', routeResponse: true, timeoutMs: 5000 } },
    }),
    wrapper: ['prlimit', '--nofile=256:256', '--'],
  });
  const extra = [];
  try {
    const pid = gw.proc.pid;  // prlimit execs wsgw: this is the gateway
    assert.equal(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'wsgw');
    const started = await gw.waitForLog((l) => l.msg === 'lambda function process started' && l.function === 'py', 15000, 'the function process');
    const runtimePort = Number(String(started.runtimeApi).split(':').pop());
    const c = await Client.open(gw.url);
    assert.equal(await c.request('before', 10000), 'got before');
    // The gateway's descriptors used up by connections to its public port, then connections to the
    // function's Runtime API port wait in its backlog: its socket stays readable while accept() fails.
    extra.push(...flood(gw.port, 400));
    await gw.waitForLog((l) => /^accept failed/.test(l.msg ?? '') && l.listener === 'public', 15000, 'the descriptors to run out');
    const waiting = flood(runtimePort, 5);
    extra.push(...waiting);
    await waitFor(() => waiting.every((s) => !s.pending), { what: 'the Runtime API connections to be in its backlog' });
    const cpuBefore = cpuSeconds(pid);
    const startedAt = Date.now();
    await sleep(2000);  // the measurement window, not a synchronisation
    const cpuShare = (cpuSeconds(pid) - cpuBefore) / ((Date.now() - startedAt) / 1000);
    assert.ok(gw.alive(), 'the gateway is alive');
    assert.ok(cpuShare < 0.2, `CPU while out of descriptors: ${(cpuShare * 100).toFixed(1)} % of a core (a busy accept loop takes a whole one)`);
    await gw.waitForLog((l) => /^accept failed/.test(l.msg ?? '') && /lambda runtime API of function py/.test(l.listener ?? ''), 5000,
      'the Runtime API listener\'s warning');
    const warnings = gw.lines.filter((l) => /^accept failed/.test(l.msg ?? '') && /lambda runtime API/.test(l.listener ?? ''));
    assert.ok(warnings.length <= 2, `Runtime API accept warnings: ${warnings.length}`);
    assert.equal(await c.request('during', 10000), 'got during', 'the function serves while accepts fail');
  } finally {
    for (const s of extra) s.destroy();
  }
});
