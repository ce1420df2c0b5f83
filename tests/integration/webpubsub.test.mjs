// Azure Web PubSub clients and servers against wsgw (docs/webpubsub.md), with Microsoft's own packages from
// npm, unmodified: @azure/web-pubsub (WebPubSubServiceClient: tokens and the REST API) and
// @azure/web-pubsub-client (WebPubSubClient on both JSON subprotocols). AWS-style clients of the same API
// share the groups. The reliable subprotocol's recovery is tested through a TCP relay that the test cuts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Gateway, Client, WebSocket, whoami, waitFor, withTimeout, waitForEvent, ctx, eventsOf } from './harness.mjs';
import { startRelay } from './tcp-relay.mjs';
import { WebPubSubServiceClient } from '@azure/web-pubsub';
import { WebPubSubClient, WebPubSubJsonProtocol, WebPubSubJsonReliableProtocol } from '@azure/web-pubsub-client';

const KEY = 'wsgw-test-access-key-0123456789abcdefghij';
const OTHER_KEY = 'someone-elses-access-key-0123456789abcdefghij';
let gw;

function routes(dir) {
  return {
    routeSelectionExpression: '$request.body.action',
    webPubSub: { hubs: ['chat', 'game'], accessKeys: [KEY], recoveryWindowSeconds: 20 },
    handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
    routes: {
      // The API's other clients need an API key; Azure clients are admitted by their access token instead.
      $connect: { handler: 'probe', authorizer: { type: 'apiKey', keys: ['aws-key'] } },
      $disconnect: { handler: 'probe' },
      $default: { handler: 'probe', routeResponse: true },
      whoami: { handler: 'probe', routeResponse: true },
      join: { handler: 'probe', routeResponse: true },
      sendgroup: { handler: 'probe', routeResponse: true },
    },
  };
}

function service(hub = 'chat', { port = gw.port, key = KEY } = {}) {
  return new WebPubSubServiceClient(`Endpoint=http://127.0.0.1:${port};AccessKey=${key};Version=1.0;`, hub,
                                    { allowInsecureConnection: true });
}

// A started SDK client whose received messages are collected; `reliable` picks the subprotocol.
async function azureClient(tokenOptions = {}, { reliable = false, port = gw.port, hub = 'chat' } = {}) {
  const { url } = await service(hub, { port }).getClientAccessToken(tokenOptions);
  const client = new WebPubSubClient(url, {
    protocol: reliable ? WebPubSubJsonReliableProtocol() : WebPubSubJsonProtocol(),
    autoReconnect: false,
    messageRetryOptions: { maxRetries: 0 },  // a refused request fails at once instead of being retried
    // The SDK's keep-alive ping (every 20 s) and silence check (every 40 s) run on timers that outlive
    // stop(); off, so the test process ends when the tests do (ping/pong is tested with a raw client below).
    keepAliveIntervalInMs: 0,
    keepAliveTimeoutInMs: 0,
  });
  const got = { group: [], server: [], connected: [], disconnected: [], stopped: [] };
  client.on('group-message', (e) => got.group.push(e.message));
  client.on('server-message', (e) => got.server.push(e.message));
  client.on('connected', (e) => got.connected.push(e));
  client.on('disconnected', (e) => got.disconnected.push(e));
  client.on('stopped', (e) => got.stopped.push(e));
  await withTimeout(client.start(), 5000, 'WebPubSubClient.start');
  await waitFor(() => got.connected.length === 1, { what: 'the connected event' });
  return { client, got, connectionId: got.connected[0].connectionId };
}

before(async () => {
  gw = await Gateway.start({ routes, plugins: ['probe'], extraArgs: ['--access-log', 'off'] });
});
after(async () => { await gw?.stop(); });

test('a server-SDK token opens a client-SDK connection; its user ID comes back in connected', async () => {
  const { client, got, connectionId } = await azureClient({ userId: 'alice' });
  assert.match(connectionId, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(got.connected[0].userId, 'alice');
  assert.equal(await service().connectionExists(connectionId), true);
  assert.equal(await service().userExists('alice'), true);
  // $connect ran with the token's identity as requestContext.authorizer.
  const connect = await waitForEvent(gw.eventsPath, (e) => ctx(e).connectionId === connectionId && ctx(e).eventType === 'CONNECT');
  assert.equal(ctx(connect).authorizer.userId, 'alice');
  assert.equal(ctx(connect).authorizer.hub, 'chat');
  client.stop();
  await waitFor(async () => !(await service().connectionExists(connectionId)), { what: 'the connection to be gone' });
});

test('join and publish with acks, noEcho; an AWS-style member of the group gets the data itself', async () => {
  const roles = ['webpubsub.joinLeaveGroup.lobby', 'webpubsub.sendToGroup.lobby'];
  const a = await azureClient({ userId: 'alice', roles });
  const b = await azureClient({ userId: 'bob', roles });
  const aws = await Client.open(gw.url, { headers: { 'x-api-key': 'aws-key' } });
  const awsId = await whoami(aws);
  await service().group('lobby').addConnection(awsId);
  await a.client.joinGroup('lobby');
  await b.client.joinGroup('lobby');
  const ack = await a.client.sendToGroup('lobby', { hello: 'json' }, 'json');
  assert.equal(typeof ack.ackId, 'number');
  await waitFor(() => b.got.group.length === 1 && a.got.group.length === 1, { what: 'the group message at both clients' });
  assert.deepEqual(b.got.group[0].data, { hello: 'json' });
  assert.equal(b.got.group[0].group, 'lobby');
  assert.equal(b.got.group[0].fromUserId, 'alice');
  assert.equal((await aws.next()).text, '{"hello":"json"}');
  await a.client.sendToGroup('lobby', 'no echo', 'text', { noEcho: true });
  await waitFor(() => b.got.group.length === 2, { what: 'the noEcho message at bob' });
  assert.equal(b.got.group[1].data, 'no echo');
  assert.equal((await aws.next()).text, 'no echo');
  // Alice did not get her own noEcho message: a server message sent after it arrives first.
  await service().sendToConnection(a.connectionId, 'after', { contentType: 'text/plain' });
  await waitFor(() => a.got.server.length === 1, { what: 'the marker at alice' });
  assert.equal(a.got.group.length, 1);
  a.client.stop();
  b.client.stop();
  aws.ws.close();
});

test('permissions by role: a refused join or publish rejects with the SDK error named Forbidden', async () => {
  const c = await azureClient({ userId: 'carol', roles: ['webpubsub.joinLeaveGroup.lobby'] });
  await assert.rejects(c.client.joinGroup('vip'), (err) => err.name === 'SendMessageError' && err.errorDetail?.name === 'Forbidden');
  await assert.rejects(c.client.sendToGroup('lobby', 'x', 'text'), (err) => err.errorDetail?.name === 'Forbidden');
  // The server grants the permission at run time, and the publish goes through.
  await service().grantPermission(c.connectionId, 'sendToGroup', { targetName: 'lobby' });
  assert.equal(await service().hasPermission(c.connectionId, 'sendToGroup', { targetName: 'lobby' }), true);
  await c.client.sendToGroup('lobby', 'now allowed', 'text');
  c.client.stop();
});

test('server SDK: send to all, a group, a user with two connections, a connection; group add/remove; exists; close', async () => {
  const svc = service();
  const d1 = await azureClient({ userId: 'dave' });
  const d2 = await azureClient({ userId: 'dave' });
  const e = await azureClient({ userId: 'erin' });
  await svc.sendToUser('dave', { to: 'dave' });
  await waitFor(() => d1.got.server.length === 1 && d2.got.server.length === 1, { what: 'both of dave\'s connections' });
  assert.deepEqual(d1.got.server[0].data, { to: 'dave' });
  await svc.sendToConnection(e.connectionId, 'just erin', { contentType: 'text/plain' });
  await waitFor(() => e.got.server.length === 1, { what: 'erin\'s message' });
  assert.equal(e.got.server[0].data, 'just erin');
  assert.equal(d1.got.server.length, 1);

  const room = svc.group('room');
  assert.equal(await room.hasConnection?.(e.connectionId) ?? true, true);  // (not in every SDK version)
  assert.equal(await svc.groupExists('room'), false);
  await room.addConnection(e.connectionId);
  await room.addUser('dave');
  assert.equal(await svc.groupExists('room'), true);
  await room.sendToAll('to the room', { contentType: 'text/plain' });
  await waitFor(() => e.got.server.length === 2 && d1.got.server.length === 2 && d2.got.server.length === 2,
                { what: 'the room message at all three' });
  await room.removeUser('dave');
  await room.removeConnection(e.connectionId);
  assert.equal(await svc.groupExists('room'), false);
  await assert.rejects(room.addConnection('AAAAAAAAAAAAAAAAAAAAAA'), (err) => err.statusCode === 404);

  await svc.sendToAll({ everyone: true });
  await waitFor(() => e.got.server.length === 3 && d2.got.server.length === 3, { what: 'the broadcast' });
  // The management API's POST /@users/{user} (beside AWS's @connections) reaches the same two connections.
  const res = await fetch(`${gw.managementUrl}/@users/dave`, { method: 'POST', body: 'via management' });
  assert.equal(res.status, 200);
  await waitFor(() => d1.got.server.length === 4 && d2.got.server.length === 4, { what: 'the management send to dave' });
  assert.equal(d2.got.server[3].data, 'via management');
  assert.equal(e.got.server.length, 3);
  assert.equal((await fetch(`${gw.managementUrl}/@users/dave`, { method: 'GET' })).status, 405);

  await svc.closeConnection(e.connectionId, { reason: 'bye' });
  await waitFor(() => e.got.disconnected.length === 1, { what: 'erin to be disconnected' });
  assert.equal(await svc.connectionExists(e.connectionId), false);
  await svc.closeUserConnections('dave');
  await waitFor(async () => !(await svc.userExists('dave')), { what: 'dave to be gone' });
});

test('events go to the route named by the event; a two-way route answers as a message from the server; AWS handlers reach Azure groups', async () => {
  const f = await azureClient({ userId: 'fay', roles: ['webpubsub.joinLeaveGroup'] });
  const ack = await f.client.sendEvent('whoami', { action: 'whoami' }, 'json');
  assert.equal(typeof ack.ackId, 'number');
  await waitFor(() => f.got.server.length === 1, { what: 'the route response' });
  assert.equal(f.got.server[0].data, f.connectionId);
  const ev = await waitForEvent(gw.eventsPath, (e) => ctx(e).connectionId === f.connectionId && ctx(e).routeKey === 'whoami');
  assert.equal(ev.body, '{"action":"whoami"}');
  // An AWS-style handler (the probe's send_to_group) sends to a group an Azure client joined.
  await f.client.joinGroup('mixed');
  const aws = await Client.open(gw.url, { headers: { 'x-api-key': 'aws-key' } });
  aws.ws.send(JSON.stringify({ action: 'sendgroup', group: 'mixed', data: 'from a handler' }));
  assert.equal((await aws.next()).text, 'sent:0');
  await waitFor(() => f.got.server.length === 2, { what: 'the handler\'s group message' });
  assert.equal(f.got.server[1].data, 'from a handler');
  aws.ws.close();
  f.client.stop();
});

test('a missing token is 401; a foreign key or another hub\'s token is 403; an unknown hub 404', async () => {
  const status = (url) => Client.open(url).then((c) => { c.ws.close(); return 101; }, (err) => err.statusCode);
  assert.equal(await status(`ws://127.0.0.1:${gw.port}/client/hubs/chat`), 401);
  const foreign = await service('chat', { key: OTHER_KEY }).getClientAccessToken();
  assert.equal(await status(foreign.url), 403);
  const otherHub = await service('game').getClientAccessToken();
  assert.equal(await status(otherHub.url.replace('/hubs/game', '/hubs/chat')), 403);
  assert.equal(await status(otherHub.url), 101);
  assert.equal(await status(`ws://127.0.0.1:${gw.port}/client/hubs/nope?access_token=x`), 404);
  // The REST API refuses a request signed with another key.
  await assert.rejects(service('chat', { key: OTHER_KEY }).sendToAll('x'), (err) => err.statusCode === 403);
  // A message over limits.maxMessageBytes is 413, naming the limit itself (it said one byte more).
  for (const size of [131073, 200000]) {
    await assert.rejects(service().sendToAll('x'.repeat(size), { contentType: 'text/plain' }),
      (err) => err.statusCode === 413 && /at most 131072 are accepted/.test(err.message), `${size} bytes`);
  }
  // A REST call whose URL is longer than any upgrade head may be gets the REST API's error form (it got
  // the upgrade's plain 431, with no x-ms-error-code for the SDK to read).
  const long = await fetch(`http://127.0.0.1:${gw.port}/api/hubs/chat/groups/${'g'.repeat(9000)}/:send?api-version=2024-01-01`,
    { method: 'POST', body: 'x' });
  assert.equal(long.status, 414);
  assert.equal(long.headers.get('x-ms-error-code'), 'BadRequest');
  assert.match((await long.json()).message, /request line reaches 8192 bytes without ending/);
});

test('AWS-style clients keep working beside the Azure ones', async () => {
  assert.equal(await Client.open(gw.url).then(() => 101, (err) => err.statusCode), 401);  // their authorizer still runs
  const c = await Client.open(gw.url, { headers: { 'x-api-key': 'aws-key' } });
  const id = await whoami(c);
  assert.match(id, /^[A-Za-z0-9_-]{22}$/);
  c.ws.send('plain text');  // $default, two-way: the probe echoes it
  assert.equal((await c.next()).text, 'plain text');
  c.ws.close();
});

test('reliable: a client whose TCP connection is cut while 40 messages go to its group recovers them all, once, in order',
     async () => {
  const relay = await startRelay(gw.port);
  let r;
  try {
    r = await azureClient({ userId: 'rita', roles: ['webpubsub.joinLeaveGroup'] }, { reliable: true, port: relay.port });
    await r.client.joinGroup('feed');
    relay.cut();
    // The gateway saw the socket drop, not a close: the connection waits for its client.
    await waitFor(() => gw.lines.some((l) => l.msg === 'webpubsub connection detached' && l.connectionId === r.connectionId),
                  { what: 'the connection to be detached' });
    const svc = service();
    for (let i = 1; i <= 40; ++i) await svc.group('feed').sendToAll({ n: i });
    relay.reopen();
    await waitFor(() => r.got.server.length >= 40, { timeoutMs: 20000, what: 'all 40 messages after the recovery' });
    assert.deepEqual(r.got.server.map((m) => m.data.n), Array.from({ length: 40 }, (_, i) => i + 1));
    assert.equal(r.got.connected.length, 1);  // recovered, not a new connection
    assert.equal(r.got.disconnected.length, 0);
    assert.equal(await svc.connectionExists(r.connectionId), true);
    assert.ok(gw.lines.some((l) => l.msg === 'webpubsub connection recovered' && l.connectionId === r.connectionId));
    // $disconnect has not run: the connection never ended.
    assert.equal(eventsOf(gw.eventsPath, r.connectionId, 'DISCONNECT').length, 0);
  } finally {
    r?.client.stop();
    relay.close();
  }
});

// The old socket is still open on the gateway's side when the client comes back: the recovery takes the
// connection over (its first attempt gets 503 while the old socket is dropped; the SDK retries).
test('reliable: a client that comes back while its old socket still looks open here recovers, with every message sent meanwhile', async () => {
  const relay = await startRelay(gw.port);
  let r;
  try {
    r = await azureClient({ userId: 'hana', roles: ['webpubsub.joinLeaveGroup'] }, { reliable: true, port: relay.port });
    await r.client.joinGroup('halfopen');
    relay.cutClientSide();
    const svc = service();
    for (let i = 1; i <= 20; ++i) await svc.group('halfopen').sendToAll({ n: i });
    assert.ok(!gw.lines.some((l) => l.msg === 'webpubsub connection detached' && l.connectionId === r.connectionId),
      'the gateway has not seen the old socket end');
    relay.reopen();
    await waitFor(() => r.got.server.length >= 20, { timeoutMs: 20000, what: 'all 20 messages after the recovery' });
    assert.deepEqual(r.got.server.map((m) => m.data.n), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.equal(r.got.connected.length, 1);  // recovered, not a new connection
    assert.equal(r.got.disconnected.length, 0);
    assert.ok(gw.lines.some((l) => l.msg === 'webpubsub recovery takes over a connection whose socket is still open' && l.connectionId === r.connectionId));
    assert.ok(gw.lines.some((l) => l.msg === 'webpubsub connection recovered' && l.connectionId === r.connectionId));
    assert.equal(eventsOf(gw.eventsPath, r.connectionId, 'DISCONNECT').length, 0);
  } finally {
    r?.client.stop();
    relay.close();
  }
});

test('reliable: a dropped client that does not come back ends when its window does, with one $disconnect; one that never acks is closed at maxSendQueueBytes', async () => {
  const gw2 = await Gateway.start({
    routes: (dir) => ({ ...routes(dir), webPubSub: { hubs: ['chat'], accessKeys: [KEY], recoveryWindowSeconds: 2 },
                        limits: { maxSendQueueBytes: 8192 } }),
    plugins: ['probe'], extraArgs: ['--access-log', 'off'],
  });
  const relay = await startRelay(gw2.port);
  try {
    const gone = await azureClient({ userId: 'gus' }, { reliable: true, port: relay.port });
    relay.cut();
    await waitFor(() => gw2.lines.some((l) => l.msg === 'webpubsub connection detached' && l.connectionId === gone.connectionId),
                  { what: 'the connection to be detached' });
    assert.equal(eventsOf(gw2.eventsPath, gone.connectionId, 'DISCONNECT').length, 0);  // not yet: the window is open
    const ended = await waitForEvent(gw2.eventsPath, (e) => ctx(e).connectionId === gone.connectionId && ctx(e).eventType === 'DISCONNECT',
                                     { timeoutMs: 10000, what: 'the $disconnect at the window\'s end' });
    assert.equal(ctx(ended).disconnectStatusCode, 1006);
    assert.match(ctx(ended).disconnectReason, /recovery window ended/);
    assert.equal(await service('chat', { port: gw2.port }).connectionExists(gone.connectionId), false);
    // Its next recovery attempt reaches the gateway, which answers as Azure does for a connection it no longer
    // holds: the upgrade, then close 1008, on which the SDK stops retrying (an HTTP 404 it retries for 30 s).
    const closedAtOnce = gw2.lines.length;
    relay.reopen();
    await waitFor(() => gone.got.stopped.length === 1, { timeoutMs: 5000, what: 'the SDK to stop on the 1008' });
    const answer = gw2.lines.slice(closedAtOnce).find((l) => l.msg === 'upgrade closed at once');
    assert.equal(answer?.code, 1008);
    assert.match(answer.reason, /recovery window ended|not waiting to be recovered/);
    // Within a close frame's 123 bytes, the advice included (it was cut off before).
    assert.ok(Buffer.byteLength(answer.reason) <= 123 && answer.reason.endsWith('connect without awps_connection_id'), answer.reason);
    assert.equal(gone.got.connected.length, 1);  // no new connection was made of it
    assert.equal(eventsOf(gw2.eventsPath, gone.connectionId, 'DISCONNECT').length, 1);

    // A reliable client that reads but never sends sequenceAck: what it has not acknowledged is bounded.
    const { url } = await service('chat', { port: gw2.port }).getClientAccessToken({ userId: 'nick' });
    const raw = new Client(new WebSocket(url, 'json.reliable.webpubsub.azure.v1'));
    await new Promise((resolve, reject) => { raw.ws.once('open', resolve); raw.ws.once('error', reject); });
    assert.equal(raw.ws.protocol, 'json.reliable.webpubsub.azure.v1');
    const connected = JSON.parse((await raw.next()).text);
    assert.equal(connected.event, 'connected');
    raw.ws.send(JSON.stringify({ type: 'ping' }));
    assert.deepEqual(JSON.parse((await raw.next()).text), { type: 'pong' });
    const svc = service('chat', { port: gw2.port });
    let refused = null;
    for (let i = 0; i < 40 && !refused; ++i) {
      await svc.sendToConnection(connected.connectionId, 'x'.repeat(1000), { contentType: 'text/plain' })
        .catch((err) => { refused = err; });
    }
    assert.equal(refused?.statusCode, 404);  // the send that did not fit was not accepted
    const close = await raw.closed;
    assert.equal(close.code, 1008);
    assert.equal(close.reason, 'Slow consumer: send queue over maxSendQueueBytes');
  } finally {
    relay.close();
    await gw2.stop();
  }
});

// Two ways a client with an ordinary token could go past what the operator set (found by review):
// joinGroup, leaveGroup and sendToGroup did not meet the API's throttle (only events did), so one client
// could fan out to a whole group at wire speed; and a reliable connection whose socket dropped stopped
// counting against maxConnectionsPerIp while it waited to be recovered, so one address could leave
// connection after connection waiting (1,200 of them, about 1 MB each), holding no socket at all.
test('group requests meet the API throttle; dropped reliable connections count against maxConnectionsPerIp while they wait', async () => {
  const gw3 = await Gateway.start({
    routes: (dir) => ({
      routeSelectionExpression: '$request.body.action',
      throttle: { rate: 2, burst: 2 },
      webPubSub: { hubs: ['chat'], accessKeys: [KEY], recoveryWindowSeconds: 30 },
      limits: { maxConnectionsPerIp: 3 },
      handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
      routes: { $connect: { handler: 'probe' }, $disconnect: { handler: 'probe' }, $default: { handler: 'probe', routeResponse: true } },
    }),
    plugins: ['probe'], extraArgs: ['--access-log', 'off'],
  });
  try {
    const svc = service('chat', { port: gw3.port });
    const token = async () => (await svc.getClientAccessToken({ userId: 'mallory', roles: ['webpubsub.joinLeaveGroup', 'webpubsub.sendToGroup'] })).url;
    const open = async (protocol, query = '') => {
      const c = new Client(new WebSocket(await token() + query, protocol));
      await new Promise((resolve, reject) => { c.ws.once('open', resolve); c.ws.once('error', reject); c.ws.once('unexpected-response', (req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode }))); });
      c.connected = JSON.parse((await c.next()).text);
      assert.equal(c.connected.event, 'connected');
      return c;
    };
    // 10 sends with acks, at once: the bucket (2, then 2 a second) lets a few through, the rest are refused.
    const sender = await open('json.webpubsub.azure.v1');
    for (let i = 1; i <= 10; ++i) sender.ws.send(JSON.stringify({ type: 'sendToGroup', group: 'g', dataType: 'text', data: `m${i}`, ackId: i }));
    const acks = [];
    while (acks.length < 10) {
      const m = JSON.parse((await sender.next()).text);
      if (m.type === 'ack') acks.push(m);
    }
    const refused = acks.filter((a) => !a.success);
    assert.ok(acks.filter((a) => a.success).length <= 4, JSON.stringify(acks));
    assert.ok(refused.length >= 6);
    assert.equal(refused[0].error.name, 'TooManyRequests');
    assert.match(refused[0].error.message, /throttle/);
    sender.ws.close();
    await sender.closed;
    // maxConnectionsPerIp 3: three reliable connections dropped (a reset, no close) wait for recovery and
    // keep their places; a fourth upgrade from the address is refused with 429 meanwhile.
    const dropped = [];
    for (let i = 0; i < 3; ++i) {
      const c = await open('json.reliable.webpubsub.azure.v1');
      dropped.push(c.connected);
      c.ws._socket.resetAndDestroy();
      await c.closed;
    }
    await waitFor(() => gw3.lines.filter((l) => l.msg === 'webpubsub connection detached').length === 3, { what: 'three connections waiting' });
    await assert.rejects(open('json.reliable.webpubsub.azure.v1'), (err) => err.statusCode === 429);
    // One of them coming back takes its own place: a client at its address's limit can still resume.
    const { connectionId, reconnectionToken } = dropped[0];
    const resumed = await open('json.reliable.webpubsub.azure.v1',
      `&awps_connection_id=${connectionId}&awps_reconnection_token=${encodeURIComponent(reconnectionToken)}`);
    assert.equal(resumed.connected.connectionId, connectionId);
    await assert.rejects(open('json.reliable.webpubsub.azure.v1'), (err) => err.statusCode === 429);
    resumed.ws.close();
    await resumed.closed;
    assert.ok(gw3.alive());
  } finally {
    await gw3.stop();
  }
});
