// Groups and broadcast on one node: the management endpoints (PUT/DELETE /@groups/{group}/connections/{id},
// POST/GET /@groups/{group}, POST /@broadcast) and the host API (add_to_group, remove_from_group,
// send_to_group, send_to_all), in-process and from an isolated worker process; bad input gets a clear 4xx;
// a closed connection leaves its groups by itself. The cluster-wide behaviour is in cluster.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Gateway, Client, whoami, waitFor } from './harness.mjs';

const ACTIONS = ['whoami', 'join', 'leave', 'sendgroup', 'sendall'];
let gw;

function routes(isolated) {
  return (dir) => ({
    routeSelectionExpression: '$request.body.action',
    handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') }, ...(isolated ? { isolation: 'process', workers: 1 } : {}) } },
    routes: Object.fromEntries([...ACTIONS, '$default'].map((k) => [k, { handler: 'probe', routeResponse: true }])),
  });
}

async function mgmt(method, p, body, g = gw) {
  const res = await fetch(g.managementUrl + p, { method, body });
  return { status: res.status, body: await res.text(), type: res.headers.get('x-amzn-errortype'), allow: res.headers.get('allow') };
}

async function openClients(g, n) {
  const out = [];
  for (let i = 0; i < n; ++i) {
    const client = await Client.open(g.url);
    out.push({ client, id: await whoami(client) });
  }
  return out;
}

// What each client has received since the last call, with no waiting for silence: a marker posted to each
// connection afterwards leaves after every frame queued to it before (one connection's frames keep their
// order), so the messages ahead of the marker are all there is. Each send must have returned first.
let markers = 0;
async function received(list, g = gw) {
  const out = [];
  for (const c of list) {
    const marker = `marker-${++markers}`;
    assert.equal((await mgmt('POST', `/@connections/${c.id}`, marker, g)).status, 200);
    const got = [];
    for (let m = await c.client.next(); m.text !== marker; m = await c.client.next())
      got.push(m.isBinary ? `<binary ${m.data.toString('hex')}>` : m.text);
    out.push(got);
  }
  return out;
}

before(async () => {
  gw = await Gateway.start({ routes: routes(false), plugins: ['probe'], extraArgs: ['--access-log', 'off'] });
});
after(async () => { await gw?.stop(); });

test('management: members get each group send once, others nothing; broadcast reaches everyone', async () => {
  const cs = await openClients(gw, 4);
  for (const c of cs.slice(0, 2)) assert.equal((await mgmt('PUT', `/@groups/room-1/connections/${c.id}`)).status, 204);
  // Joining twice is harmless.
  assert.equal((await mgmt('PUT', `/@groups/room-1/connections/${cs[0].id}`)).status, 204);
  const listed = JSON.parse((await mgmt('GET', '/@groups/room-1')).body);
  assert.deepEqual(listed, { group: 'room-1', connections: [cs[0].id, cs[1].id].sort() });
  assert.equal((await mgmt('POST', '/@groups/room-1', 'hi room')).status, 200);
  assert.deepEqual(await received(cs), [['hi room'], ['hi room'], [], []]);
  // Under the AWS SDK's stage prefix too, percent-encoded.
  assert.equal((await mgmt('POST', '/prod/%40groups/room-1', 'staged')).status, 200);
  assert.deepEqual(await received(cs), [['staged'], ['staged'], [], []]);
  assert.equal((await mgmt('DELETE', `/@groups/room-1/connections/${cs[1].id}`)).status, 204);
  assert.equal((await mgmt('POST', '/@groups/room-1', 'after leave')).status, 200);
  assert.deepEqual(await received(cs), [['after leave'], [], [], []]);
  assert.equal((await mgmt('POST', '/@broadcast', 'all')).status, 200);
  assert.deepEqual(await received(cs), [['all'], ['all'], ['all'], ['all']]);
  // Binary data stays binary.
  assert.equal((await mgmt('POST', '/@groups/room-1', Buffer.from([0xff, 0x00, 0xfe]))).status, 200);
  assert.deepEqual(await received(cs), [['<binary ff00fe>'], [], [], []]);
  // A closed connection leaves its groups: the group is empty and gone.
  await cs[0].client.close(1000);
  await waitFor(async () => JSON.parse((await mgmt('GET', '/@groups/room-1')).body).connections.length === 0,
    { what: 'room-1 to lose its closed member' });
  for (const c of cs.slice(1)) await c.client.close(1000);
});

test('management: bad input gets a clear 4xx and changes nothing', async () => {
  const [c] = await openClients(gw, 1);
  const badName = await mgmt('PUT', `/@groups/${encodeURIComponent('no spaces')}/connections/${c.id}`);
  assert.equal(badName.status, 400);
  assert.equal(badName.type, 'BadRequestException');
  assert.match(JSON.parse(badName.body).message, /Invalid group 'no spaces': a group name is 1 to 128 characters/);
  assert.equal((await mgmt('POST', `/@groups/${'x'.repeat(129)}`, 'x')).status, 400);
  assert.equal((await mgmt('PUT', '/@groups/ok/connections/not-an-id')).status, 400);
  const gone = await mgmt('PUT', '/@groups/ok/connections/AAAAAAAAAAAAAAAAAAAAAA');
  assert.equal(gone.status, 410);
  assert.equal(gone.type, 'GoneException');
  const wrong = await mgmt('GET', `/@groups/ok/connections/${c.id}`);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.allow, 'PUT, DELETE');
  assert.equal((await mgmt('DELETE', '/@broadcast')).status, 405);
  assert.equal((await mgmt('POST', '/@groups/ok', 'x'.repeat(131073))).status, 413);
  assert.equal((await mgmt('POST', '/@broadcast', 'x'.repeat(131073))).status, 413);
  assert.equal((await mgmt('GET', '/@groups')).status, 404);
  assert.deepEqual(JSON.parse((await mgmt('GET', '/@groups/ok')).body).connections, []);
  // A connection in 256 groups cannot join a 257th, and says why.
  for (let i = 0; i < 256; ++i) assert.equal((await mgmt('PUT', `/@groups/g${i}/connections/${c.id}`)).status, 204);
  const full = await mgmt('PUT', `/@groups/g256/connections/${c.id}`);
  assert.equal(full.status, 400);
  assert.match(JSON.parse(full.body).message, /in 256 groups already/);
  assert.deepEqual(await received([c]), [[]]);
  await c.client.close(1000);
});

test('host API: add_to_group, send_to_group, remove_from_group, send_to_all and their error codes', async () => {
  const cs = await openClients(gw, 3);
  assert.equal(await cs[0].client.request(JSON.stringify({ action: 'join', group: 'api' })), '0');
  assert.equal(await cs[0].client.request(JSON.stringify({ action: 'join', group: 'api', id: cs[1].id })), '0');
  assert.equal(await cs[2].client.request(JSON.stringify({ action: 'sendgroup', group: 'api', data: 'g' })), 'sent:0');
  assert.deepEqual(await received(cs), [['g'], ['g'], []]);
  assert.equal(await cs[1].client.request(JSON.stringify({ action: 'leave', group: 'api' })), '0');
  assert.equal(await cs[2].client.request(JSON.stringify({ action: 'sendgroup', group: 'api', data: 'g2' })), 'sent:0');
  assert.deepEqual(await received(cs), [['g2'], [], []]);
  // The sender is a connection too: it gets the broadcast and its reply.
  // The handler broadcasts before it answers, so once the answer is in the broadcast is queued to everyone.
  cs[2].client.send(JSON.stringify({ action: 'sendall', data: 'everyone' }));
  assert.deepEqual((await cs[2].client.collectTexts(2)).sort(), ['everyone', 'sent:0']);
  assert.deepEqual(await received(cs), [['everyone'], ['everyone'], []]);
  // WSGW_GONE (1) for an unknown connection, WSGW_ERROR (4) for a bad group name.
  assert.equal(await cs[0].client.request(JSON.stringify({ action: 'join', group: 'api', id: 'AAAAAAAAAAAAAAAAAAAAAA' })), '1');
  assert.equal(await cs[0].client.request(JSON.stringify({ action: 'join', group: 'bad name' })), '4');
  assert.equal(await cs[0].client.request(JSON.stringify({ action: 'sendgroup', group: '', data: 'x' })), 'sent:4');
  for (const c of cs) await c.client.close(1000);
});

test('an isolated handler (its own process) uses groups through the same host API', async () => {
  const iso = await Gateway.start({ routes: routes(true), plugins: ['probe'], extraArgs: ['--access-log', 'off'] });
  try {
    const cs = await openClients(iso, 2);
    assert.equal(await cs[0].client.request(JSON.stringify({ action: 'join', group: 'iso' })), '0');
    assert.equal(await cs[1].client.request(JSON.stringify({ action: 'sendgroup', group: 'iso', data: 'from-worker' })), 'sent:0');
    assert.deepEqual(await received(cs, iso), [['from-worker'], []]);
    cs[1].client.send(JSON.stringify({ action: 'sendall', data: 'all-from-worker' }));
    assert.deepEqual((await cs[1].client.collectTexts(2)).sort(), ['all-from-worker', 'sent:0']);
    assert.deepEqual(await received(cs, iso), [['all-from-worker'], []]);
    assert.deepEqual(JSON.parse((await mgmt('GET', '/@groups/iso', undefined, iso)).body).connections, [cs[0].id]);
    for (const c of cs) await c.client.close(1000);
  } finally {
    await iso.stop();
  }
});
