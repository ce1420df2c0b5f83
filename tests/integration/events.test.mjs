// The event JSON (docs/event.md) as a handler gets it from event_json(), for CONNECT, MESSAGE and
// DISCONNECT, read back from the probe's log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, Client, probeRoutes, whoami, waitForEvent, eventsOf, readEvents, ctx, sleep } from './harness.mjs';

let gw;

before(async () => {
  gw = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'] });
});

after(async () => {
  await gw?.stop();
});

const headerValue = (headers, name) => {
  const key = Object.keys(headers ?? {}).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
};

const eventOf = (id, type, what) =>
  waitForEvent(gw.eventsPath, (e) => ctx(e).connectionId === id && ctx(e).eventType === type, { what: what ?? `the ${type} event of ${id}` });

function assertCommonContext(rc, { id, eventType, routeKey }) {
  assert.equal(rc.eventType, eventType);
  assert.equal(rc.routeKey, routeKey);
  assert.equal(rc.connectionId, id);
  assert.equal(rc.messageDirection, 'IN');
  assert.equal(rc.apiId, 'wsgw');
  assert.equal(rc.stage, '$default');
  assert.equal(typeof rc.domainName, 'string');
  assert.equal(typeof rc.requestId, 'string');
  assert.ok(rc.requestId.length > 0);
  assert.equal(rc.requestId, rc.extendedRequestId);
  assert.equal(typeof rc.connectedAt, 'number');
  assert.equal(typeof rc.requestTimeEpoch, 'number');
  assert.ok(rc.requestTimeEpoch >= rc.connectedAt, `requestTimeEpoch ${rc.requestTimeEpoch} < connectedAt ${rc.connectedAt}`);
  assert.ok(Math.abs(rc.requestTimeEpoch - Date.now()) < 60000, 'requestTimeEpoch is epoch milliseconds');
  assert.match(rc.requestTime, /^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}$/);
  assert.equal(rc.identity?.sourceIp, '127.0.0.1');
}

test('CONNECT carries headers, multiValueHeaders and the query, and no body or messageId', async () => {
  const c = await Client.open(`${gw.url}/?x=1&x=2&y=hello`, { headers: { 'User-Agent': 'it-agent/1.0', 'X-Custom': 'abc' } });
  const id = await whoami(c);
  const ev = await eventOf(id, 'CONNECT');
  const rc = ctx(ev);
  assertCommonContext(rc, { id, eventType: 'CONNECT', routeKey: '$connect' });
  assert.equal(rc.identity.userAgent, 'it-agent/1.0');
  assert.equal(headerValue(ev.headers, 'x-custom'), 'abc');
  assert.deepEqual(headerValue(ev.multiValueHeaders, 'x-custom'), ['abc']);
  assert.equal(headerValue(ev.headers, 'user-agent'), 'it-agent/1.0');
  assert.equal(ev.queryStringParameters?.y, 'hello');
  assert.ok(['1', '2'].includes(ev.queryStringParameters?.x), `queryStringParameters.x = ${ev.queryStringParameters?.x}`);
  assert.deepEqual(ev.multiValueQueryStringParameters?.x, ['1', '2']);
  assert.deepEqual(ev.multiValueQueryStringParameters?.y, ['hello']);
  assert.ok(!('body' in ev), 'no body on CONNECT');
  assert.ok(!('messageId' in rc), 'no messageId on CONNECT');
  assert.ok(!('disconnectStatusCode' in rc) && !('disconnectReason' in rc), 'no disconnect fields on CONNECT');
  await c.close(1000);
});

test('CONNECT without a query has no query fields at all (absent, not null)', async () => {
  const c = await Client.open(gw.url);
  const id = await whoami(c);
  const ev = await eventOf(id, 'CONNECT');
  assert.ok(!('queryStringParameters' in ev), `queryStringParameters: ${JSON.stringify(ev.queryStringParameters)}`);
  assert.ok(!('multiValueQueryStringParameters' in ev), `multiValueQueryStringParameters: ${JSON.stringify(ev.multiValueQueryStringParameters)}`);
  assert.equal(typeof ev.headers, 'object');
  await c.close(1000);
});

test('MESSAGE carries the text body, a messageId and isBase64Encoded false', async () => {
  const c = await Client.open(gw.url, { headers: { 'User-Agent': 'msg-agent' } });
  const id = await whoami(c);
  const connectEv = await eventOf(id, 'CONNECT');
  const body = '{"action":"nothing","n":"event-text ✓"}';
  assert.equal(await c.request(body), body);
  const ev = await waitForEvent(gw.eventsPath, (e) => ctx(e).connectionId === id && e.body === body, { what: 'the MESSAGE event' });
  const rc = ctx(ev);
  assertCommonContext(rc, { id, eventType: 'MESSAGE', routeKey: '$default' });
  assert.equal(ev.isBase64Encoded, false);
  assert.equal(typeof rc.messageId, 'string');
  assert.ok(rc.messageId.length > 0);
  assert.equal(rc.identity.userAgent, 'msg-agent');
  assert.equal(rc.connectedAt, ctx(connectEv).connectedAt, 'connectedAt is the same on every event of a connection');
  assert.notEqual(rc.requestId, ctx(connectEv).requestId, 'every invocation has its own requestId');
  assert.ok(!('disconnectStatusCode' in rc));
  assert.ok(!('headers' in ev), 'headers only on CONNECT');
  await c.close(1000);
});

test('a binary MESSAGE is base64 with isBase64Encoded true', async () => {
  const c = await Client.open(gw.url);
  const id = await whoami(c);
  const payload = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0x7f]);
  c.send(payload);
  const reply = await c.next();
  assert.ok(reply.isBinary && reply.data.equals(payload));
  const ev = await waitForEvent(gw.eventsPath, (e) => ctx(e).connectionId === id && ctx(e).eventType === 'MESSAGE' && e.isBase64Encoded === true,
    { what: 'the binary MESSAGE event' });
  assert.equal(ev.body, payload.toString('base64'));
  await c.close(1000);
});

test('DISCONNECT after a close with 1000 "bye" carries that code and reason', async () => {
  const c = await Client.open(gw.url);
  const id = await whoami(c);
  await c.close(1000, 'bye');
  const ev = await eventOf(id, 'DISCONNECT');
  const rc = ctx(ev);
  assertCommonContext(rc, { id, eventType: 'DISCONNECT', routeKey: '$disconnect' });
  assert.equal(rc.disconnectStatusCode, 1000);
  assert.equal(rc.disconnectReason, 'bye');
  assert.ok(!('body' in ev), 'no body on DISCONNECT');
  assert.ok(!('messageId' in rc), 'no messageId on DISCONNECT');
});

test('a close frame without a code gives 1005 "Client-side close frame status not set"', async () => {
  const c = await Client.open(gw.url);
  const id = await whoami(c);
  await c.close(); // ws sends a close frame with an empty payload when no code is given
  const rc = ctx(await eventOf(id, 'DISCONNECT'));
  assert.equal(rc.disconnectStatusCode, 1005);
  assert.equal(rc.disconnectReason, 'Client-side close frame status not set');
});

test('a dropped TCP connection gives 1006', async () => {
  const c = await Client.open(gw.url);
  const id = await whoami(c);
  c.terminate();
  const rc = ctx(await eventOf(id, 'DISCONNECT'));
  assert.equal(rc.disconnectStatusCode, 1006);
  assert.equal(typeof rc.disconnectReason, 'string');
});

test('$disconnect comes after the last message, even when the client closes at once', async () => {
  const c = await Client.open(gw.url);
  const id = await whoami(c);
  for (let i = 0; i < 5; ++i) c.send(JSON.stringify({ action: 'sleep', ms: 100, n: i }));
  c.ws.close(1000, 'done');
  await c.waitClosed(5000);
  await eventOf(id, 'DISCONNECT');
  const kinds = eventsOf(gw.eventsPath, id).map((e) => (ctx(e).eventType === 'MESSAGE' ? `MESSAGE ${JSON.parse(e.body).n ?? 'whoami'}` : ctx(e).eventType));
  assert.deepEqual(kinds, ['CONNECT', 'MESSAGE whoami', 'MESSAGE 0', 'MESSAGE 1', 'MESSAGE 2', 'MESSAGE 3', 'MESSAGE 4', 'DISCONNECT']);
  await sleep(200);
  assert.equal(readEvents(gw.eventsPath).filter((e) => ctx(e).connectionId === id && ctx(e).eventType === 'DISCONNECT').length, 1,
    '$disconnect runs exactly once');
});
