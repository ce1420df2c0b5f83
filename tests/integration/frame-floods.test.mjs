// What a client may not make the gateway read, wait for or spin on, judged from frame headers as they arrive
// (issue 16): a frame announced over maxFrameBytes gets 1009 at once, however much (or little) of its payload
// follows; a message of ever more empty fragments gets 1009 once its fragments count past maxMessageBytes
// (each fragment before the last counts at least 64 bytes); a flood of pings gets 1008 once it is past the
// control frame budget (256 at once, then 64 a second). Well-behaved fragmentation and pinging are untouched,
// and other connections are served throughout.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  RawWebSocket, cpuSeconds, ctx, maskedFrame, probeGatewayWithBystander, readEvents, sqliteRows, waitFor, waitForCpuQuiet,
} from './harness.mjs';

// A masked frame's header announcing `length` payload bytes, with no payload after it.
function headerOnly(opcode, length, fin = true) {
  const h = Buffer.alloc(14);
  h[0] = (fin ? 0x80 : 0) | opcode;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(BigInt(length), 2);
  h.writeUInt32BE(0x01020304, 10);  // the masking key
  return h;
}

const texts = (raw) => raw.messages().filter((m) => m.opcode === 1).map((m) => m.payload.toString('utf8'));

async function theirDisconnect(gw, id) {
  const disc = await waitFor(() => readEvents(gw.eventsPath).find((e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === id),
    { timeoutMs: 10000, what: `$disconnect of ${id}` });
  await waitFor(async () => (await sqliteRows(gw.dbPath, `SELECT connection_id FROM connections WHERE connection_id = '${id}'`)).length === 0,
    { timeoutMs: 5000, what: `the row of ${id} to be removed` });
  return ctx(disc);
}

// A raw connection and its connection ID (the probe's whoami answer).
async function openRaw(gw) {
  const raw = await RawWebSocket.open(gw.port);
  raw.write(maskedFrame(1, JSON.stringify({ action: 'whoami' })));
  await raw.until(() => texts(raw).length === 1, 5000, 'the whoami answer');
  return { raw, id: texts(raw)[0] };
}

describe('client frames past the limits', () => {
  const env = probeGatewayWithBystander();

  const bystanderAnswers = async () => {
    const t0 = Date.now();
    assert.equal(await env.bystander.request('still here', 5000), 'still here');
    return Date.now() - t0;
  };

  for (const [what, length] of [['2^62 bytes', 2n ** 62n], ['32,769 bytes (maxFrameBytes + 1)', 32769n]]) {
    test(`a frame header announcing ${what}, then nothing: 1009 at once, not at the idle timeout`, async () => {
      const { raw, id } = await openRaw(env.gw);
      const t0 = Date.now();
      raw.write(headerOnly(2, length));
      const close = await raw.closeFrame(3000);
      assert.equal(close.code, 1009);
      assert.equal(close.reason, 'Message too big');
      assert.ok(Date.now() - t0 < 3000);
      await waitFor(() => raw.closedSocket, { timeoutMs: 10000, what: 'the server to close the socket' });
      const disc = await theirDisconnect(env.gw, id);
      assert.equal(disc.disconnectStatusCode, 1009);
      assert.equal(disc.disconnectReason, 'Message too big');
      await bystanderAnswers();
    });
  }

  test('a frame of maxFrameBytes, fragmented messages and empty fragments within the limit are answered', async () => {
    const { raw } = await openRaw(env.gw);
    raw.write(maskedFrame(1, 'x'.repeat(32768)));
    // 1,000 empty fragments (64,000 counted bytes) before the last: within the 131,072 limit.
    const parts = [maskedFrame(1, '', false)];
    for (let i = 0; i < 1000; ++i) parts.push(maskedFrame(0, '', false));
    parts.push(maskedFrame(0, 'abc'));
    raw.write(Buffer.concat(parts));
    await raw.until(() => texts(raw).length === 3, 5000, 'both answers');
    assert.deepEqual(texts(raw).slice(1).map((t) => t.length), [32768, 3]);
    assert.equal(texts(raw)[2], 'abc');
    assert.ok(!raw.frames.some((f) => f.opcode === 8), 'no close');
    raw.destroy();
  });

  test('a message of ever more empty fragments: 1009 after 2,048 of them, and nothing is delivered', async () => {
    const { raw, id } = await openRaw(env.gw);
    const parts = [maskedFrame(1, '', false)];
    for (let i = 0; i < 5000; ++i) parts.push(maskedFrame(0, '', false));
    raw.write(Buffer.concat(parts));
    const close = await raw.closeFrame(5000);
    assert.equal(close.code, 1009);
    assert.equal(close.reason, 'Message too big');
    assert.equal(texts(raw).length, 1, 'only the whoami answer');
    const disc = await theirDisconnect(env.gw, id);
    assert.equal(disc.disconnectStatusCode, 1009);
    await bystanderAnswers();
  });

  // libwebsockets answers the first of the pings one read brings while its pong is not yet written, and
  // drops the rest (RFC 6455 5.5.3 lets a server skip pings it has not answered yet): a lone ping after each
  // batch shows that the connection is alive and answering.
  test('pings: 250 at once and 60 more a second later are answered, and the connection stays open', async () => {
    const { raw } = await openRaw(env.gw);
    const ponged = (payload) => raw.frames.some((f) => f.opcode === 0xa && f.payload.toString() === payload);
    raw.write(Buffer.concat(Array.from({ length: 250 }, (_, i) => maskedFrame(9, `p${i}`))));
    await raw.until(() => ponged('p0'), 5000, 'the pong of the first ping');
    raw.write(maskedFrame(9, 'check1'));
    await raw.until(() => ponged('check1'), 5000, 'the pong of the 251st ping');
    await new Promise((resolve) => setTimeout(resolve, 1100));  // the budget refills with time: this is the test
    raw.write(Buffer.concat(Array.from({ length: 60 }, (_, i) => maskedFrame(9, `q${i}`))));
    await raw.until(() => ponged('q0'), 5000, 'the pong of the first ping after the pause');
    raw.write(maskedFrame(9, 'check2'));
    await raw.until(() => ponged('check2'), 5000, 'the pong of the 61st ping after the pause');
    raw.write(maskedFrame(1, 'after the pings'));
    await raw.until(() => texts(raw).includes('after the pings'), 5000, 'the echo after the pings');
    assert.ok(!raw.frames.some((f) => f.opcode === 8), 'no close');
    raw.destroy();
  });

  test('a ping flood from a client that does not read: 1008 and $disconnect, and the gateway goes quiet', async () => {
    const { raw, id } = await openRaw(env.gw);
    raw.sock.pause();  // reads nothing from here: the pongs pile up on its side
    const cpuBefore = cpuSeconds(env.gw.proc.pid);
    const ping = maskedFrame(9, 'flood');
    const burst = Buffer.concat(Array.from({ length: 10000 }, () => ping));
    // Up to 100 bursts of 10,000 pings while the socket takes them, until the gateway hangs up.
    for (let i = 0; i < 100 && !raw.closedSocket && !raw.sock.destroyed; ++i) {
      if (!raw.sock.write(burst)) await Promise.race([new Promise((r) => raw.sock.once('drain', r)), new Promise((r) => setTimeout(r, 200))]);
      const seen = readEvents(env.gw.eventsPath).some((e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === id);
      if (seen) break;
    }
    const disc = await theirDisconnect(env.gw, id);
    assert.equal(disc.disconnectStatusCode, 1008);
    assert.match(disc.disconnectReason, /^Too many control frames/);
    await waitForCpuQuiet(env.gw.proc.pid, { timeoutMs: 10000, what: 'the gateway to go quiet after the flood' });
    const used = cpuSeconds(env.gw.proc.pid) - cpuBefore;
    assert.ok(used < 3, `the flood cost the gateway ${used.toFixed(2)} s of CPU`);
    const ms = await bystanderAnswers();
    assert.ok(ms < 1000, `the env.bystander's echo took ${ms} ms`);
    raw.destroy();
  });
});
