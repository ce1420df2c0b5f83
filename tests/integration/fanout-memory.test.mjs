// Shared fan-out payloads (docs/limits.md), through the real gateway: a group send holds its payload once,
// however many members read nothing. What a member that reads nothing holds of its own beside the shared
// payload is the rest of the one frame its socket took part of (messages over 32 KiB go out as 32 KiB frames,
// as AWS API Gateway frames them); before, it was the rest of the whole message, a copy per member.
// Then the members read, and each gets every message whole and in order (the frames reassemble).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, RawWebSocket, ctx, maskedFrame, probeRoutes, rssKb, sanitized, waitForEvent } from './harness.mjs';

const MEMBERS = 200;
const MESSAGES = 6;
const SIZE = 120000;

function payloadOf(n) {
  const b = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i++) b[i] = 97 + ((i + n) % 26);
  return b;
}

describe('fan-out to members that read nothing', () => {
  let gw;
  before(async () => {
    gw = await Gateway.start({
      routes: (dir) => ({
        ...probeRoutes({ routes: ['whoami'] })(dir),
        // A small socket buffer, so the gateway's own queue holds what the members do not read.
        limits: { socketSendBufferBytes: 4096, maxSendQueueBytes: 8388608 },
      }),
      plugins: ['probe'],
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test(`${MESSAGES} group sends of ${SIZE} bytes to ${MEMBERS} stalled members: memory grows by about one frame per member, not one message`, async () => {
    const members = [];
    for (let i = 0; i < MEMBERS; i++) {
      const raw = await RawWebSocket.open(gw.port);
      assert.equal(raw.response.status, 101);
      raw.write(maskedFrame(1, JSON.stringify({ action: 'whoami' })));
      await raw.until(() => raw.frames.length > 0, 5000, 'the whoami answer');
      raw.id = raw.frames.shift().payload.toString();
      const res = await fetch(`${gw.managementUrl}/@groups/room/connections/${raw.id}`, { method: 'PUT' });
      assert.equal(res.status, 204);
      raw.sock.pause();
      members.push(raw);
    }
    const rss0 = rssKb(gw.proc.pid);
    for (let n = 0; n < MESSAGES; n++) {
      const res = await fetch(`${gw.managementUrl}/@groups/room`, { method: 'POST', body: payloadOf(n) });
      assert.equal(res.status, 200);
    }
    // The sends are queued on the network threads; give them a moment to be written as far as they go.
    const queued = async () => Number(/^wsgw_send_queue_bytes (\d+)/m.exec(await (await fetch(`${gw.managementUrl}/metrics`)).text())[1]);
    let last = -1;
    for (let i = 0; i < 40; i++) {
      const now = await queued();
      if (now === last && now > 0) break;
      last = now;
      await new Promise((r) => setTimeout(r, 100));  // polling the gauge until it stops moving
    }
    const grownKb = rssKb(gw.proc.pid) - rss0;
    // Each member's kernel buffers take some of the first message; the rest waits. A copy of the rest of each
    // member's current message was ~100 KB per member (about 20 MB here); one frame's rest is at most 32 KiB
    // (6.4 MB for 200), and the payloads themselves are 720 KB once.
    if (!sanitized(gw.proc.pid)) assert.ok(grownKb < 12 * 1024, `RSS grew by ${grownKb} kB for ${MEMBERS} members`);

    // Now every member reads: each gets the six messages whole and in order.
    for (const m of members) m.sock.resume();
    for (const m of members) {
      await m.until(() => m.messages().length >= MESSAGES, 15000, `member ${m.id} to read ${MESSAGES} messages`);
      const got = m.messages().map((x) => x.payload);
      assert.equal(got.length, MESSAGES);
      for (let n = 0; n < MESSAGES; n++) assert.ok(got[n].equals(payloadOf(n)), `member ${m.id}: message ${n} intact`);
      assert.ok(m.frames.every((f) => f.payload.length <= 32768), 'no frame over 32 KiB');
      m.destroy();
    }
  });
});

// The send-queue bound holds for group and broadcast sends as for a route response (docs/limits.md): a member
// that reads nothing is closed with 1008 once its queue is over maxSendQueueBytes, its $disconnect says why,
// the sends go on answering 200, and the members that read get every message, in order.
describe('group and broadcast sends to a member that reads nothing', () => {
  const SEND = 16384;
  const SENDS = 64;  // 1 MiB each way: past the 256 KiB bound and what the kernel buffers of a stalled socket
  let gw;
  before(async () => {
    gw = await Gateway.start({
      routes: (dir) => ({ ...probeRoutes({ routes: ['whoami'] })(dir), limits: { socketSendBufferBytes: 4096, maxSendQueueBytes: 262144 } }),
      plugins: ['probe'],
    });
  });
  after(async () => {
    await gw?.stop();
  });

  async function member(group) {
    const raw = await RawWebSocket.open(gw.port);
    raw.write(maskedFrame(1, JSON.stringify({ action: 'whoami' })));
    await raw.until(() => raw.frames.length > 0, 5000, 'the whoami answer');
    raw.id = raw.frames.shift().payload.toString();
    if (group) assert.equal((await fetch(`${gw.managementUrl}/@groups/${group}/connections/${raw.id}`, { method: 'PUT' })).status, 204);
    return raw;
  }
  const body = (kind, n) => Buffer.alloc(SEND, `${kind}-${n}-`);

  test(`${SENDS} group sends and ${SENDS} broadcasts of ${SEND} B: the stalled members are closed with 1008, the readers get all`, async () => {
    const stalledInGroup = await member('room');
    const stalledOther = await member(null);  // reached by the broadcasts only
    const reader = await member('room');
    stalledInGroup.sock.pause();
    stalledOther.sock.pause();
    // Paced by the reader (a burst faster than it reads would overflow its queue too, as it should).
    for (let n = 0; n < SENDS; n++) {
      assert.equal((await fetch(`${gw.managementUrl}/@groups/room`, { method: 'POST', body: body('g', n) })).status, 200);
      assert.equal((await fetch(`${gw.managementUrl}/@broadcast`, { method: 'POST', body: body('b', n) })).status, 200);
      await reader.until(() => reader.messages().length >= 2 * (n + 1), 5000, `the reader to get send ${n}`);
    }
    const got = reader.messages().map((m) => m.payload);
    const expected = [];
    for (let n = 0; n < SENDS; n++) expected.push(body('g', n), body('b', n));
    assert.equal(got.length, expected.length);
    for (let i = 0; i < expected.length; i++) assert.ok(got[i].equals(expected[i]), `message ${i} whole and in order`);
    // Each stalled member: gone (410), its $disconnect saying why, within the 5 s close deadline and a margin.
    const events = gw.eventsPath;
    for (const stalled of [stalledInGroup, stalledOther]) {
      const ev = await waitForEvent(events, (e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === stalled.id,
        { timeoutMs: 10000, what: `the $disconnect of stalled member ${stalled.id}` });
      assert.equal(ctx(ev).disconnectStatusCode, 1008, JSON.stringify(ctx(ev)));
      assert.match(ctx(ev).disconnectReason, /Slow consumer/);
      assert.equal((await fetch(`${gw.managementUrl}/@connections/${stalled.id}`)).status, 410);
      stalled.destroy();
    }
    assert.equal(reader.closedSocket, false, 'the reader is still connected');
    reader.destroy();
  });
});
