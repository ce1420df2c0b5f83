// Azure Web PubSub's server REST API on a two-node cluster sharing a Redis this file starts (docs/webpubsub.md,
// "Hubs, groups and a cluster"): @azure/web-pubsub's WebPubSubServiceClient against one node reaches clients on
// the other; a REST call that needs Redis does not hold its network thread while Redis is stopped (SIGSTOP of
// the redis-server started here): an echo on the same thread (--network-threads 1) is answered first, and the
// REST call gets Redis's answer once Redis runs again; a REST call still waiting at the handshake timeout is
// answered 503 with a JSON reason, and its late result is dropped safely. A send's data type (json, text,
// binary) and a client's publish ("from":"group", its user ID) arrive on the other node as a client on the
// sending node gets them. A REST call's `excluded` connections are left out on every node, and closes (all, a
// group's, a user's, one connection) reach the other node's clients with their reason; closeAllConnections
// closes both nodes'. Recovery is per node: a reliable client whose recovery reaches another node than the
// one holding its connection is upgraded and closed with 1008, and the client SDK stops recovering at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Gateway, Client, whoami, waitFor, withTimeout, parseHttpResponse } from './harness.mjs';
import { startRelay } from './tcp-relay.mjs';
import { WebPubSubServiceClient } from '@azure/web-pubsub';
import { WebPubSubClient, WebPubSubJsonProtocol, WebPubSubJsonReliableProtocol } from '@azure/web-pubsub-client';
import { RedisServer } from './redis-server.mjs';

const KEY = 'wsgw-cluster-access-key-0123456789abcdefghij';

let redis;            // RedisServer
let n1, n2;           // n1 runs one network thread, so the echo and the REST call share it
const sdkClients = [];

// The redis-server this file started, stopped (SIGSTOP) until the returned function continues it; the state
// the kernel reports for it says when the stop has taken effect.
async function pauseRedis() {
  const state = () => fs.readFileSync(`/proc/${redis.proc.pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
  redis.proc.kill('SIGSTOP');
  await waitFor(() => state() === 'T', { what: 'redis-server to be stopped' });
  let continued = false;
  return () => {
    if (continued) return;
    continued = true;
    redis.proc.kill('SIGCONT');
  };
}

function routes({ handshakeTimeoutSeconds, recoveryWindowSeconds = 0 } = {}) {
  return (dir) => ({
    routeSelectionExpression: '$request.body.action',
    webPubSub: { hubs: ['chat'], accessKeys: [KEY], recoveryWindowSeconds },
    ...(handshakeTimeoutSeconds ? { limits: { handshakeTimeoutSeconds } } : {}),
    handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
    routes: { whoami: { handler: 'probe', routeResponse: true }, $default: { handler: 'echo', routeResponse: true } },
  });
}

function startNode(nodeId, { networkThreads, logLevel, handshakeTimeoutSeconds, recoveryWindowSeconds } = {}) {
  const extraArgs = ['--cluster', `redis://127.0.0.1:${redis.port}`, '--access-log', 'off'];
  if (networkThreads) extraArgs.push('--network-threads', String(networkThreads));
  return Gateway.start({ routes: routes({ handshakeTimeoutSeconds, recoveryWindowSeconds }), plugins: ['echo', 'probe'], nodeId, logLevel, extraArgs });
}

function service(gw) {
  return new WebPubSubServiceClient(`Endpoint=http://127.0.0.1:${gw.port};AccessKey=${KEY};Version=1.0;`, 'chat',
                                    { allowInsecureConnection: true });
}

// A started SDK client on `gw` (token from the SDK), collecting the messages the server sends it (`server`)
// and every data message, from the server or a group, in arrival order (`messages`); `reliable` picks the
// subprotocol.
async function azureClient(gw, tokenOptions, { reliable = false } = {}) {
  const { url } = await service(gw).getClientAccessToken(tokenOptions);  // gw: a node, or { port } of a relay
  const client = new WebPubSubClient(url, { protocol: reliable ? WebPubSubJsonReliableProtocol() : WebPubSubJsonProtocol(),
    autoReconnect: false, keepAliveIntervalInMs: 0, keepAliveTimeoutInMs: 0 });
  const got = { server: [], messages: [], connected: [], disconnected: [], stopped: false };
  client.on('server-message', (e) => { got.server.push(e.message); got.messages.push(e.message); });
  client.on('group-message', (e) => got.messages.push(e.message));
  client.on('connected', (e) => got.connected.push(e));
  client.on('disconnected', (e) => got.disconnected.push(e));
  client.on('stopped', () => { got.stopped = true; });
  await withTimeout(client.start(), 5000, 'WebPubSubClient.start');
  await waitFor(() => got.connected.length === 1, { what: 'the connected event' });
  sdkClients.push(client);
  return { client, got, connectionId: got.connected[0].connectionId };
}

// The server SDK's REST token, made here for a raw request: HS256 with the request URL as audience.
function restToken(url) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ aud: url, iat: now, exp: now + 600 })}`;
  return `${input}.${crypto.createHmac('sha256', KEY).update(input).digest('base64url')}`;
}

// A REST request on a raw socket, so that its local port is known: `read` resolves once the gateway has
// taken every byte of it from its socket (it is then being performed), `response` with the parsed answer;
// `answered()` says whether the gateway has written to it or closed it yet, by what this process has
// received and what the kernel holds for it (loopback delivers a write at once, so this has no lag).
async function rawRest(gw, method, path) {
  const host = `127.0.0.1:${gw.port}`;
  const request = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${restToken(`http://${host}${path}`)}\r\n` +
    'Content-Length: 0\r\n\r\n';
  const socket = net.connect(gw.port, '127.0.0.1');
  const chunks = [];
  socket.on('data', (d) => chunks.push(d));
  const response = new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => resolve(parseHttpResponse(Buffer.concat(chunks))));
  });
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const localPort = socket.localPort;
  await new Promise((resolve) => socket.write(request, resolve));
  const read = waitFor(() => tcpEnd(gw.port, localPort)?.unread === 0, { what: `wsgw to read the ${method} request` });
  const answered = () => {
    const mine = tcpEnd(localPort, gw.port);
    return chunks.length > 0 || !mine || mine.state !== kTcpEstablished || mine.unread > 0;
  };
  return { read, response, answered };
}

const kTcpEstablished = 1;

// One end of a loopback TCP connection, from /proc/net/tcp: its state and the bytes waiting unread in it.
function tcpEnd(localPort, remotePort) {
  const hex = (p) => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    if (f[1].endsWith(`:${hex(localPort)}`) && f[2].endsWith(`:${hex(remotePort)}`))
      return { state: parseInt(f[3], 16), unread: parseInt(f[4].split(':')[1], 16) };
  }
  return null;
}

before(async () => {
  redis = await RedisServer.start();
  n1 = await startNode('wps-n1', { networkThreads: 1 });
  n2 = await startNode('wps-n2');
});

after(async () => {
  for (const c of sdkClients) c.stop();
  try {
    const failures = [];
    for (const gw of [n1, n2]) await gw?.stop().catch((err) => failures.push(err));
    if (failures.length) throw failures[0];
  } finally {
    if (redis?.proc.exitCode === null) redis.proc.kill('SIGCONT');  // stopped by a test that failed
    await redis?.stop();
  }
});

test('the server SDK on one node reaches clients on the other: group send, group membership, a connection', async () => {
  const far = await azureClient(n2, { userId: 'faraway', groups: ['lobby'] });
  const aws = await Client.open(n2.url);
  const awsId = await whoami(aws);
  const svc = service(n1);
  await waitFor(() => svc.groupExists('lobby'), { what: 'the group made on n2 to exist for n1' });
  await svc.group('lobby').sendToAll('to the lobby', { contentType: 'text/plain' });
  await waitFor(() => far.got.server.length === 1, { what: 'the group message at the client on n2' });
  assert.equal(far.got.server[0].data, 'to the lobby');
  // (JSON and binary across nodes: the data types test below.)
  await svc.sendToConnection(far.connectionId, 'just you', { contentType: 'text/plain' });
  await waitFor(() => far.got.server.length === 2, { what: 'the connection message at the client on n2' });
  assert.equal(far.got.server[1].data, 'just you');
  assert.equal(await svc.connectionExists(far.connectionId), true);
  assert.equal(await svc.userExists('faraway'), true);
  assert.equal(await svc.groupExists('nobody-here'), false);
  // An AWS-style client of n2 added to the group through n1 gets the raw data.
  await svc.group('lobby').addConnection(awsId);
  await svc.group('lobby').sendToAll('raw for aws', { contentType: 'text/plain' });
  assert.equal((await aws.next(5000)).text, 'raw for aws');
  await waitFor(() => far.got.server.length === 3, { what: 'the second group message at the client on n2' });
  aws.ws.close();
});

// What a test compares of a data message: binary data (an ArrayBuffer from the SDK) as base64.
function rendered(m) {
  const data = m.data instanceof ArrayBuffer ? { base64: Buffer.from(m.data).toString('base64') } : m.data;
  return { from: m.from, group: m.group, fromUserId: m.fromUserId, dataType: m.dataType, data, sequenceId: m.sequenceId };
}

// A plain (AWS-style) client of `gw` in group `group`, collecting the raw frames it gets.
async function plainClient(gw, group) {
  const c = await Client.open(gw.url);
  const connectionId = await whoami(c);
  await service(n1).group(group).addConnection(connectionId);
  const frames = [];
  c.ws.on('message', (data, isBinary) => {
    const bytes = Buffer.from(data);
    frames.push({ isBinary, data: bytes.toString(isBinary ? 'base64' : 'utf8') });
  });
  return { c, connectionId, frames };
}

test('json, text and binary keep their dataType across nodes: to a connection, a group, a user, all; a client\'s publish too', async () => {
  const roles = ['webpubsub.sendToGroup', 'webpubsub.joinLeaveGroup'];
  // Each pair: a client on n1 (where the server SDK sends) and one like it on n2; what the n2 one gets must
  // be what the n1 one gets.
  const pairs = [];
  for (const reliable of [false, true]) {
    const kind = reliable ? 'reliable' : 'json';
    const near = await azureClient(n1, { userId: `near-${kind}`, groups: ['kinds'], roles }, { reliable });
    const far = await azureClient(n2, { userId: `far-${kind}`, groups: ['kinds'], roles }, { reliable });
    pairs.push({ kind, near, far });
  }
  const plainNear = await plainClient(n1, 'kinds');
  const plainFar = await plainClient(n2, 'kinds');
  const svc = service(n1);
  await waitFor(async () => (await svc.userExists('far-reliable')) && (await svc.userExists('far-json')),
    { what: 'the users on n2 to exist for n1' });

  const payloads = [
    { dataType: 'json', body: { just: 'you', n: [1, 2] }, options: {}, data: { just: 'you', n: [1, 2] },
      raw: { isBinary: false, data: '{"just":"you","n":[1,2]}' } },
    { dataType: 'text', body: 'plain words', options: { contentType: 'text/plain' }, data: 'plain words',
      raw: { isBinary: false, data: 'plain words' } },
    { dataType: 'binary', body: Buffer.from([0, 1, 0xfe, 0xff]), options: { contentType: 'application/octet-stream' },
      data: { base64: 'AAH+/w==' }, raw: { isBinary: true, data: 'AAH+/w==' } },
  ];

  // Runs `send`, waits for one more message at each client of `pairs` and each plain client of `plains`, and
  // checks that the n2 client of every pair got exactly what its n1 twin got, with the expected type and data.
  async function check(what, payload, send, { plains = [], expectFrom = 'server' } = {}) {
    const counts = pairs.map((p) => [p.near.got.messages.length, p.far.got.messages.length]);
    const plainCounts = plains.map((p) => p.frames.length);
    await send();
    await waitFor(() => pairs.every((p, i) => p.near.got.messages.length === counts[i][0] + 1 &&
                                              p.far.got.messages.length === counts[i][1] + 1) &&
                        plains.every((p, i) => p.frames.length === plainCounts[i] + 1),
      { what: `${what}: one message at every client` });
    for (const p of pairs) {
      const near = rendered(p.near.got.messages.at(-1));
      const far = rendered(p.far.got.messages.at(-1));
      assert.deepEqual(far, near, `${what}, ${p.kind} subprotocol: the client on n2 got what the client on n1 got`);
      assert.equal(near.from, expectFrom, what);
      assert.equal(near.dataType, payload.dataType, what);
      assert.deepEqual(near.data, payload.data, what);
      assert.equal(typeof near.sequenceId, p.kind === 'reliable' ? 'number' : 'undefined', `${what}: sequenceId`);
    }
    if (plains.length) {
      const [near, far] = plains.map((p) => p.frames.at(-1));
      assert.deepEqual(far, near, `${what}: the plain client on n2 got the raw data the plain client on n1 got`);
      assert.deepEqual(near, payload.raw, what);
    }
  }

  for (const payload of payloads) {
    await check(`sendToConnection ${payload.dataType}`, payload, async () => {
      for (const p of pairs)
        for (const c of [p.near, p.far]) await svc.sendToConnection(c.connectionId, payload.body, payload.options);
      for (const c of [plainNear, plainFar]) await svc.sendToConnection(c.connectionId, payload.body, payload.options);
    }, { plains: [plainNear, plainFar] });
    await check(`group sendToAll ${payload.dataType}`, payload,
      () => svc.group('kinds').sendToAll(payload.body, payload.options), { plains: [plainNear, plainFar] });
    await check(`sendToUser ${payload.dataType}`, payload, async () => {
      for (const p of pairs) for (const side of ['near', 'far']) await svc.sendToUser(`${side}-${p.kind}`, payload.body, payload.options);
    });
    await check(`sendToAll ${payload.dataType}`, payload, () => svc.sendToAll(payload.body, payload.options),
      { plains: [plainNear, plainFar] });
  }

  // A client's own sendToGroup from n1: the members on n2 get it from the group, with its publisher and type,
  // as the members on n1 do (the publisher among them: no noEcho).
  const publisher = pairs[0].near;
  const clientPayloads = [
    { dataType: 'json', body: { hello: 'group' }, data: { hello: 'group' }, raw: { isBinary: false, data: '{"hello":"group"}' } },
    { dataType: 'text', body: 'group words', data: 'group words', raw: { isBinary: false, data: 'group words' } },
    { dataType: 'binary', body: new Uint8Array([9, 8, 0xff]).buffer, data: { base64: 'CQj/' }, raw: { isBinary: true, data: 'CQj/' } },
  ];
  for (const payload of clientPayloads) {
    await check(`a client's sendToGroup ${payload.dataType}`, payload,
      () => publisher.client.sendToGroup('kinds', payload.body, payload.dataType), { plains: [plainNear, plainFar], expectFrom: 'group' });
    for (const p of pairs) {
      const m = p.far.got.messages.at(-1);
      assert.equal(m.group, 'kinds');
      assert.equal(m.fromUserId, 'near-json');
    }
  }

  for (const p of pairs) { p.near.client.stop(); p.far.client.stop(); }
  plainNear.c.ws.close();
  plainFar.c.ws.close();
});

test('while Redis is stopped, a REST call waiting on it does not hold its network thread; it gets Redis\'s answer after', async () => {
  const member = await azureClient(n2, { userId: 'member', groups: ['far-group'] });
  const svc = service(n1);
  await waitFor(() => svc.groupExists('far-group'), { what: 'far-group (its one member is on n2) to exist for n1' });
  const echo = await Client.open(n1.url);
  echo.send('before');
  assert.equal((await echo.next(5000)).text, 'before');

  const resume = await pauseRedis();
  try {
    // Only Redis knows that far-group has a member: n1 holds none of it.
    const rest = await rawRest(n1, 'HEAD', '/api/hubs/chat/groups/far-group?api-version=2024-12-01');
    await rest.read;
    echo.send('while redis is stopped');
    const reply = await echo.next(5000);
    assert.equal(reply.text, 'while redis is stopped');
    assert.equal(rest.answered(), false, 'the echo was answered while the REST call still waited on Redis');
    resume();
    const answer = await withTimeout(rest.response, 10000, 'the REST answer after Redis continued');
    assert.equal(answer.status, 200, `group existence answered from Redis: ${JSON.stringify(answer)}`);
  } finally {
    resume();
  }
  echo.ws.close();
  member.client.stop();
});

test('a REST call still waiting on Redis at the handshake timeout is answered 503 with why; its late result is dropped', async () => {
  const n3 = await startNode('wps-n3', { networkThreads: 1, logLevel: 'debug', handshakeTimeoutSeconds: 1 });
  try {
    const resume = await pauseRedis();
    let answer;
    try {
      const rest = await rawRest(n3, 'GET', '/api/hubs/chat/groups/far-away/connections?api-version=2024-12-01');
      answer = await withTimeout(rest.response, 10000, 'the answer to the REST call');
    } finally {
      resume();
    }
    assert.equal(answer.status, 503, JSON.stringify(answer));
    assert.equal(answer.headers['x-ms-error-code'], 'ServiceUnavailable');
    const body = JSON.parse(answer.body);
    assert.equal(body.code, 'ServiceUnavailable');
    assert.match(body.message, /did not answer within limits\.handshakeTimeoutSeconds \(1 s\).*may still take effect/);
    // The operation finishes on the cluster's executor after the answer: the network thread drops its result.
    await n3.waitForLog((l) => l.msg === 'webpubsub REST answer dropped: its request was answered or closed meanwhile', 10000,
      'the late result to be dropped');
    // The node serves on: a REST call and a WebSocket client.
    assert.equal(await service(n3).groupExists('far-away'), false);
    const echo = await Client.open(n3.url);
    echo.send('after');
    assert.equal((await echo.next(5000)).text, 'after');
    echo.ws.close();
  } finally {
    await n3.stop();
  }
});

// What a client has seen since `mark` (an index into its messages): the data of each message.
const dataSince = (c, mark) => c.got.messages.slice(mark).map((m) => m.data);

test('excluded connections on the other node are left out of sendToAll and a group\'s sendToAll, json and text', async () => {
  const near = await azureClient(n1, { userId: 'ex-near', groups: ['ex'] });
  const skipped = await azureClient(n2, { userId: 'ex-skipped', groups: ['ex'] });
  const receiver = await azureClient(n2, { userId: 'ex-receiver', groups: ['ex'] });
  const plainSkipped = await plainClient(n2, 'ex');
  const svc = service(n1);
  await waitFor(async () => (await svc.userExists('ex-skipped')) && (await svc.userExists('ex-receiver')),
    { what: 'the clients on n2 to exist for n1' });
  const sdkClientsOf = [near, skipped, receiver];

  // Each send leaves out connections of n2 (with one of n1 in some), then an unexcluded marker to the same
  // audience follows it: once every client has the marker, what it got before the marker is final.
  const cases = [
    { what: 'sendToAll json', send: (excludedConnections) => svc.sendToAll({ n: 1 }, { excludedConnections }), data: { n: 1 },
      marker: () => svc.sendToAll({ marker: 1 }), markerData: { marker: 1 } },
    { what: 'sendToAll text', send: (excludedConnections) => svc.sendToAll('left out', { contentType: 'text/plain', excludedConnections }),
      data: 'left out', marker: () => svc.sendToAll('marker 2', { contentType: 'text/plain' }), markerData: 'marker 2' },
    { what: 'group sendToAll json', send: (excludedConnections) => svc.group('ex').sendToAll({ n: 3 }, { excludedConnections }),
      data: { n: 3 }, marker: () => svc.group('ex').sendToAll({ marker: 3 }), markerData: { marker: 3 } },
    { what: 'group sendToAll text', send: (excludedConnections) => svc.group('ex').sendToAll('group left out', { contentType: 'text/plain', excludedConnections }),
      data: 'group left out', marker: () => svc.group('ex').sendToAll('marker 4', { contentType: 'text/plain' }), markerData: 'marker 4' },
  ];
  for (const [i, c] of cases.entries()) {
    const alsoNear = i % 2 === 1;  // a list with one of n1's connections too
    const excluded = [skipped.connectionId, plainSkipped.connectionId, ...(alsoNear ? [near.connectionId] : [])];
    const marks = sdkClientsOf.map((x) => x.got.messages.length);
    const plainMark = plainSkipped.frames.length;
    await c.send(excluded);
    await c.marker();
    const markerText = typeof c.markerData === 'string' ? c.markerData : JSON.stringify(c.markerData);
    await waitFor(() => sdkClientsOf.every((x, k) => x.got.messages.length > marks[k] &&
                                                     JSON.stringify(x.got.messages.at(-1).data) === JSON.stringify(c.markerData)) &&
                        plainSkipped.frames.at(-1)?.data === markerText,
      { what: `${c.what}: the marker at every client` });
    assert.deepEqual(dataSince(receiver, marks[2]), [c.data, c.markerData], `${c.what}: the client on n2 not excluded got it`);
    assert.deepEqual(dataSince(skipped, marks[1]), [c.markerData], `${c.what}: the excluded client on n2 did not get it`);
    assert.deepEqual(plainSkipped.frames.slice(plainMark).map((f) => f.data), [markerText],
      `${c.what}: the excluded plain connection on n2 did not get it`);
    assert.deepEqual(dataSince(near, marks[0]), alsoNear ? [c.markerData] : [c.data, c.markerData], `${c.what}: the client on n1`);
  }
  for (const x of sdkClientsOf) x.client.stop();
  plainSkipped.c.ws.close();
});

// Waits until an SDK client has been closed by the server and returns the reason its `disconnected` event carried.
async function closedReason(c, what) {
  await waitFor(() => c.got.stopped, { what: `${what}: the client to stop` });
  return c.got.disconnected.at(-1)?.message?.message;
}

// A client that must still be connected: a message sent to it now arrives.
async function stillConnected(svc, c, what) {
  assert.equal(c.got.stopped, false, `${what}: still connected`);
  const mark = c.got.messages.length;
  await svc.sendToConnection(c.connectionId, `still here ${what}`, { contentType: 'text/plain' });
  await waitFor(() => c.got.messages.length > mark, { what: `${what}: a message to the excluded client` });
  assert.equal(c.got.messages.at(-1).data, `still here ${what}`);
}

test('closing a group\'s, a user\'s or one connection from n1 tells clients on n2 the reason, and spares the excluded', async () => {
  const svc = service(n1);
  const groupNear = await azureClient(n1, { userId: 'cg-near', groups: ['closing'] });
  const groupFar = await azureClient(n2, { userId: 'cg-far', groups: ['closing'] });
  const groupSpared = await azureClient(n2, { userId: 'cg-spared', groups: ['closing'] });
  await waitFor(async () => (await svc.userExists('cg-far')) && (await svc.userExists('cg-spared')), { what: 'the n2 clients for n1' });
  await svc.group('closing').closeAllConnections({ reason: 'group closed', excluded: [groupSpared.connectionId] });
  assert.equal(await closedReason(groupNear, 'group, n1'), 'group closed');
  assert.equal(await closedReason(groupFar, 'group, n2'), 'group closed');
  await stillConnected(svc, groupSpared, 'group, excluded on n2');

  const userNear = await azureClient(n1, { userId: 'closing-user' });
  const userFar = await azureClient(n2, { userId: 'closing-user' });
  const userSpared = await azureClient(n2, { userId: 'closing-user' });
  await waitFor(async () => (await svc.connectionExists(userFar.connectionId)) && (await svc.connectionExists(userSpared.connectionId)),
    { what: 'the n2 connections for n1' });
  await svc.closeUserConnections('closing-user', { reason: 'user closed', excluded: [userSpared.connectionId] });
  assert.equal(await closedReason(userNear, 'user, n1'), 'user closed');
  assert.equal(await closedReason(userFar, 'user, n2'), 'user closed');
  await stillConnected(svc, userSpared, 'user, excluded on n2');

  // One connection of n2, closed through n1: its reason too.
  await svc.closeConnection(userSpared.connectionId, { reason: 'just you' });
  assert.equal(await closedReason(userSpared, 'one connection on n2'), 'just you');
  groupSpared.client.stop();
});

// Recovery is per node. A node that does not hold the connection answers as Azure does for one it no longer
// holds: the upgrade, then close 1008, on which the SDK stops recovering at once (an HTTP refusal it would
// retry for 30 s). The node that holds it keeps it for its window.
test('a reliable client dropped on one node whose recovery reaches another is closed with 1008; the SDK stops at once', async () => {
  const n3 = await startNode('wps-n3', { recoveryWindowSeconds: 30 });
  const relay = await startRelay(n3.port);
  try {
    const r = await azureClient({ port: relay.port }, { userId: 'wanderer' }, { reliable: true });
    relay.cut();
    await waitFor(() => n3.lines.some((l) => l.msg === 'webpubsub connection detached' && l.connectionId === r.connectionId),
                  { what: 'n3 to keep the dropped connection for recovery' });
    const mark = n2.lines.length;
    const reopenedAt = Date.now();
    relay.reopen(n2.port);
    await waitFor(() => r.got.stopped, { timeoutMs: 5000, what: 'the SDK to stop on the 1008 from n2' });
    assert.ok(Date.now() - reopenedAt < 5000);
    const answer = n2.lines.slice(mark).find((l) => l.msg === 'upgrade closed at once');
    assert.equal(answer?.code, 1008, JSON.stringify(n2.lines.slice(mark)));
    assert.equal(answer.reason, 'the connection is not waiting to be recovered here: connect without awps_connection_id');
    assert.equal(r.got.connected.length, 1);  // no connection was made of it on n2
    assert.equal(r.got.disconnected.length, 1);
    assert.equal(await service(n3).connectionExists(r.connectionId), true);  // n3 still holds it for its window
  } finally {
    relay.close();
    await n3.stop();
  }
});

// Last: it closes every connection of both nodes.
test('closeAllConnections through n1 closes the connections of both nodes with the reason, but the excluded', async () => {
  const svc = service(n1);
  const near = await azureClient(n1, { userId: 'all-near' });
  const far = await azureClient(n2, { userId: 'all-far' });
  const spared = await azureClient(n2, { userId: 'all-spared' });
  const plainNear = await Client.open(n1.url);
  const plainFar = await Client.open(n2.url);
  await whoami(plainNear);
  await whoami(plainFar);
  await waitFor(async () => (await svc.userExists('all-far')) && (await svc.userExists('all-spared')), { what: 'the n2 clients for n1' });
  await svc.closeAllConnections({ reason: 'maintenance', excluded: [spared.connectionId] });
  assert.equal(await closedReason(near, 'n1'), 'maintenance');
  assert.equal(await closedReason(far, 'n2'), 'maintenance');
  assert.deepEqual(await withTimeout(plainNear.closed, 5000, 'the plain client on n1 closed'), { code: 1000, reason: 'maintenance' });
  assert.deepEqual(await withTimeout(plainFar.closed, 5000, 'the plain client on n2 closed'), { code: 1000, reason: 'maintenance' });
  await stillConnected(svc, spared, 'excluded on n2');
  // Asked through n1, a connection of n2 exists while its row does: that goes in a later batch of n2's
  // store writer (after its $disconnect, when one is configured), which the client's close does not wait for.
  await waitFor(async () => !(await svc.connectionExists(far.connectionId)), { what: 'the closed connection on n2 to be gone for n1' });

  // Through n2 with nobody excluded: n1's client closes too.
  const late = await azureClient(n1, { userId: 'all-late' });
  await service(n2).closeAllConnections({ reason: 'everyone out' });
  assert.equal(await closedReason(late, 'n1, closed through n2'), 'everyone out');
  assert.equal(await closedReason(spared, 'the one spared before'), 'everyone out');
});
