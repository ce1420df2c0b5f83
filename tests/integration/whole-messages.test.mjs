// A read that holds only whole one-frame messages is handed to the receiver by the frame screen, frame by
// frame, not through libwebsockets' parser (client_frame_guard.h). What that path must keep: order when
// reading pauses part-way through such a read (the rest waits in libwebsockets), the 1007 close of a text
// message that is not UTF-8 (decided outside libwebsockets' callback, ended as soon as the client answers the
// close), and the frames that follow it, never run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Gateway, openRawUpgraded, maskedFrame, metricValue, probeRoutes, readEvents, ctx, waitFor,
} from './harness.mjs';

let gw;

before(async () => {
  gw = await Gateway.start({
    routes: (d) => ({ ...probeRoutes({ routes: ['sleep', 'whoami'] })(d), limits: { maxPendingMessages: 4 } }),
    plugins: ['probe'],
  });
});

after(async () => {
  await gw?.stop();
});

const openRaw = () => openRawUpgraded(gw.port);

test('300 whole messages in one write to a slow route: reading pauses part-way, every answer comes, in order', async () => {
  const raw = await openRaw();
  const paused0 = await metricValue(gw, 'wsgw_reads_paused_total');
  const n = 300;
  const frames = [];
  for (let i = 0; i < n; i++) frames.push(maskedFrame(1, JSON.stringify({ action: 'sleep', ms: 1, seq: i })));
  raw.write(Buffer.concat(frames));  // about 12 KB: one read, paused at the 4th pending message
  await raw.until(() => raw.messages().length >= n, 20000, `${n} answers`);
  assert.ok(raw.messages().every((m) => m.payload.toString('utf8') === 'slept'), 'every answer is the sleep route\'s');
  assert.ok((await metricValue(gw, 'wsgw_reads_paused_total')) > paused0, 'reading paused at the pending bound');
  // The probe logs each message as it runs: the sequence numbers arrive in the order they were sent.
  const seqs = readEvents(gw.eventsPath)
    .filter((e) => ctx(e).eventType === 'MESSAGE' && typeof e.body === 'string' && e.body.includes('"sleep"'))
    .map((e) => JSON.parse(e.body).seq);
  assert.deepEqual(seqs, Array.from({ length: n }, (_, i) => i));
  raw.destroy();
});

test('a whole text message that is not UTF-8, between valid ones in one write: the one before it runs, then 1007', async () => {
  const whoamis = () => readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'MESSAGE' && e.body === '{"action":"whoami"}').length;
  const before = whoamis();
  const raw = await openRaw();
  const ok = maskedFrame(1, JSON.stringify({ action: 'whoami' }));
  const bad = maskedFrame(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));  // "{" 0xFF 0xFE "}"
  raw.write(Buffer.concat([ok, bad, ok]));
  const close = await raw.closeFrame(5000);
  assert.equal(close.code, 1007);
  assert.match(close.reason, /UTF-8/);
  // The client answers the close as a browser does: the gateway must read that answer and end the connection
  // then, not at its 5 s close deadline (a reset).
  const answeredAt = Date.now();
  raw.write(maskedFrame(8, Buffer.from([0x03, 0xef])));
  await raw.until(() => raw.closedSocket, 5000, 'the gateway to close the socket');
  assert.ok(Date.now() - answeredAt < 2000, `the socket closed ${Date.now() - answeredAt} ms after the client's close`);
  await waitFor(() => whoamis() === before + 1, { timeoutMs: 5000, what: 'the message before the bad one to run' });
  const disc = await waitFor(() => readEvents(gw.eventsPath).find((e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).disconnectStatusCode === 1007),
    { timeoutMs: 5000, what: '$disconnect with 1007' });
  assert.match(ctx(disc).disconnectReason, /UTF-8/);
  assert.equal(whoamis(), before + 1, 'the message after the bad one never ran');
  raw.destroy();
});
