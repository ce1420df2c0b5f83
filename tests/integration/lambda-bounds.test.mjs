// What a misbehaving Lambda function process can make the gateway do (docs/lambda.md, "Limits"; docs/limits.md):
// real node function processes behind the real gateway. A function whose output never stops (a child left
// writing into the stdout it inherited, out of the function's process group so that no kill reaches it) must
// neither keep the gateway from serving that function's next invocations nor hold up its stop, and what it
// writes past the output budget is dropped and said once, not logged line by line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { Client, cpuSeconds, waitFor } from './harness.mjs';
import { oneNodeFunction } from './lambda-functions.mjs';
import { startGateway } from './started-gateways.mjs';

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// `flood`: starts `yes` writing into the function's stdout for ever, in a session of its own (detached), and
// answers with its PID at once. Anything else: the function's own PID.
const FLOODING_FUNCTION = `
import { spawn } from 'node:child_process';
export const handler = async (event) => {
  const { what } = JSON.parse(event.body);
  if (what === 'flood') {
    const child = spawn('yes', ['flooding the pipe'], { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    child.unref();
    return String(child.pid);
  }
  return String(process.pid);
};
`;

test('a function whose stdout never stops: its next invocations are served, its output is budgeted, the stop is not held up', async (t) => {
  const gw = await startGateway({ routes: oneNodeFunction('noisy', FLOODING_FUNCTION, 4000) });
  const c = await Client.open(gw.url);
  const yesPid = Number(await c.request(JSON.stringify({ what: 'flood' }), 8000));
  assert.ok(yesPid > 0, 'the function started its child');
  t.after(() => { if (alive(yesPid)) process.kill(yesPid, 'SIGKILL'); });
  await waitFor(() => gw.lines.some((l) => l.function === 'noisy' && l.msg === 'flooding the pipe'), { what: 'the child\'s first lines in the log' });

  // The same process serves the next invocations while the child writes (before: its supervisor read the pipe
  // for as long as it was never empty, so they timed out, and each one after that too).
  for (let i = 0; i < 3; ++i) {
    const started = Date.now();
    const answer = await c.request(JSON.stringify({ what: 'pid' }), 8000);
    assert.match(answer, /^\d+$/, `invocation ${i} answered: ${answer}`);
    assert.ok(Date.now() - started < 2000, `invocation ${i} took ${Date.now() - started} ms`);
  }

  // Past the budget the output is dropped and said, with a count, not logged: the log holds a bounded number
  // of the child's lines, however long it writes.
  await waitFor(() => gw.lines.some((l) => l.msg === 'process output over its budget; lines dropped' && l.function === 'noisy'),
                { timeoutMs: 15000, what: 'the warning about dropped output' });  // one per 10 s
  const cpuBefore = cpuSeconds(gw.proc.pid);
  const linesBefore = gw.lines.filter((l) => l.msg === 'flooding the pipe').length;
  await new Promise((r) => setTimeout(r, 2000));
  const linesLogged = gw.lines.filter((l) => l.msg === 'flooding the pipe').length - linesBefore;
  const cpu = cpuSeconds(gw.proc.pid) - cpuBefore;
  t.diagnostic(`while the child wrote: ${linesLogged} of its lines logged in 2 s, gateway CPU ${cpu.toFixed(2)} s`);
  assert.ok(linesLogged <= 2 * 5000, `${linesLogged} lines logged in 2 s`);
  // The pipe is read at a bounded rate, so the flood costs the gateway little CPU (reading and dropping all
  // that `yes` writes took a whole core).
  assert.ok(cpu < 0.6, `the gateway used ${cpu.toFixed(2)} s of CPU in 2 s while the child wrote`);

  // The stop ends the function's process and does not wait for the pipe to go quiet.
  const stopped = Date.now();
  await gw.stop({ timeoutMs: 8000 });
  assert.ok(Date.now() - stopped < 5000, `the stop took ${Date.now() - stopped} ms`);
  // The child loses its reader with the gateway, and `yes` ends on EPIPE.
  await waitFor(() => !alive(yesPid), { what: 'the flooding child to end once its pipe has no reader' });
  await c.close().catch(() => {});
});

// Any local process can reach a function's Runtime API port. One that pipelines a hundred thousand requests
// and reads no answer must not keep the function's supervisor answering them (before: a copy of the whole
// 12 MB buffer per request parsed, then up to 5 s of waiting per answer the client did not read; the
// function's invocations timed out meanwhile).
test('a local client pipelining requests to a Runtime API without reading the answers does not stop the function', async (t) => {
  const gw = await startGateway({ routes: oneNodeFunction('quiet', FLOODING_FUNCTION, 3000) });
  const started = gw.lines.find((l) => l.msg === 'lambda function process started' && l.function === 'quiet');
  const [host, port] = started.runtimeApi.split(':');
  const c = await Client.open(gw.url);
  assert.match(await c.request(JSON.stringify({ what: 'pid' }), 5000), /^\d+$/);

  const rogue = net.connect({ host, port: Number(port) });
  rogue.on('error', () => {});
  await new Promise((resolve) => rogue.once('connect', resolve));
  rogue.pause();  // reads nothing: the answers fill its receive buffer, then the gateway's send buffer
  const request = Buffer.from('GET /2018-06-01/runtime/nothing-here HTTP/1.1\r\nHost: x\r\n\r\n');
  const batch = Buffer.concat(Array(1000).fill(request));
  let written = 0;
  for (let i = 0; i < 200 && !rogue.destroyed; ++i) {
    written += batch.length;
    if (!rogue.write(batch)) await Promise.race([new Promise((r) => rogue.once('drain', r)), new Promise((r) => setTimeout(r, 200))]);
  }
  t.diagnostic(`${written} bytes of pipelined requests written`);
  const cpuBefore = cpuSeconds(gw.proc.pid);
  for (let i = 0; i < 3; ++i) {
    const began = Date.now();
    const answer = await c.request(JSON.stringify({ what: 'pid' }), 8000);
    assert.match(answer, /^\d+$/, `invocation ${i} while the client pipelines: ${answer}`);
    assert.ok(Date.now() - began < 2000, `invocation ${i} took ${Date.now() - began} ms`);
  }
  const cpu = cpuSeconds(gw.proc.pid) - cpuBefore;
  assert.ok(cpu < 1.5, `the gateway used ${cpu.toFixed(2)} s of CPU for three invocations`);
  rogue.destroy();
  await c.close();
});
