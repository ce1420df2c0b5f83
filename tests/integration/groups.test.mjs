// Groups and broadcast on one node: the management endpoints (PUT/DELETE /@groups/{group}/connections/{id},
// POST/GET /@groups/{group}, POST /@broadcast) and the host API (add_to_group, remove_from_group,
// send_to_group, send_to_all), in-process and from an isolated worker process; bad input gets a clear 4xx;
// a closed connection leaves its groups by itself. The cluster-wide behaviour is in cluster.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Gateway, Client, whoami, sleep } from './harness.mjs';

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

async function received(list, ms = 300) {
  await sleep(ms);
  return list.map((c) => c.client.queue.splice(0).map((m) => m.text));
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
  await sleep(200);
  const bin = cs[0].client.queue.splice(0);
  assert.equal(bin.length, 1);
  assert.equal(bin[0].isBinary, true);
  // A closed connection leaves its groups: the group is empty and gone.
  await cs[0].client.close(1000);
  await sleep(200);
  assert.deepEqual(JSON.parse((await mgmt('GET', '/@groups/room-1')).body).connections, []);
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
  cs[2].client.send(JSON.stringify({ action: 'sendall', data: 'everyone' }));
  assert.deepEqual((await received(cs)).map((t) => t.sort()), [['everyone'], ['everyone'], ['everyone', 'sent:0']]);
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
    assert.deepEqual(await received(cs), [['from-worker'], []]);
    cs[1].client.send(JSON.stringify({ action: 'sendall', data: 'all-from-worker' }));
    assert.deepEqual((await received(cs)).map((t) => t.sort()), [['all-from-worker'], ['all-from-worker', 'sent:0']]);
    assert.deepEqual(JSON.parse((await mgmt('GET', '/@groups/iso', undefined, iso)).body).connections, [cs[0].id]);
    for (const c of cs) await c.client.close(1000);
  } finally {
    await iso.stop();
  }
});
