// $connect runs before the upgrade completes: the auth sample refuses with 401/403, a handler's non-2xx
// status refuses with that status, a failing handler with 502; a refused connection leaves no row and runs
// no $disconnect; a push from inside $connect is delivered right after the upgrade.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, Client, openExpectingRefusal, probeRoutes, readEvents, ctx, whoami, sqliteRows, sleep, waitFor, waitForEvent } from './harness.mjs';

describe('the auth sample on $connect', () => {
  let gw;
  before(async () => {
    gw = await Gateway.start({
      routes: {
        routeSelectionExpression: '$request.body.action',
        handlers: { auth: { config: { apiKeys: ['demo-key'] } } },
        routes: {
          $connect: { handler: 'auth' },
          $default: { handler: 'echo', routeResponse: true },
        },
      },
      plugins: ['auth', 'echo'],
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test('no key: HTTP 401', async () => {
    const r = await openExpectingRefusal(gw.url);
    assert.equal(r.status, 401);
  });

  test('a wrong key in the query: HTTP 403', async () => {
    const r = await openExpectingRefusal(`${gw.url}/?apikey=not-the-key`);
    assert.equal(r.status, 403);
  });

  test('a wrong key in the x-api-key header: HTTP 403', async () => {
    const r = await openExpectingRefusal(gw.url, { headers: { 'x-api-key': 'not-the-key' } });
    assert.equal(r.status, 403);
  });

  test('?apikey=demo-key opens and echoes', async () => {
    const c = await Client.open(`${gw.url}/?apikey=demo-key`);
    assert.equal(await c.request('via-query'), 'via-query');
    await c.close(1000);
  });

  test('the x-api-key header opens and echoes', async () => {
    const c = await Client.open(gw.url, { headers: { 'x-api-key': 'demo-key' } });
    assert.equal(await c.request('via-header'), 'via-header');
    await c.close(1000);
  });

  test('refusals leave no row in the connection table', async () => {
    await openExpectingRefusal(gw.url);
    const c = await Client.open(`${gw.url}/?apikey=demo-key`);
    assert.equal(await c.request('x'), 'x');
    const rows = await waitFor(async () => {
      const r = await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections');
      return r.length === 1 ? r : null;
    }, { what: 'exactly one row (the open connection)' });
    assert.equal(rows.length, 1);
    await c.close(1000);
  });
});

describe('the status a $connect handler returns', () => {
  let gw;
  before(async () => {
    gw = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'] });
  });
  after(async () => {
    await gw?.stop();
  });

  const connectEventsWithQuery = (key, value) =>
    readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'CONNECT' && e.queryStringParameters?.[key] === value);

  test('a non-2xx status refuses the upgrade with that status', async () => {
    assert.equal((await openExpectingRefusal(`${gw.url}/?status=403`)).status, 403);
    assert.equal((await openExpectingRefusal(`${gw.url}/?status=429`)).status, 429);
  });

  test('a 2xx status other than 200 accepts', async () => {
    const c = await Client.open(`${gw.url}/?status=201`);
    assert.equal(await c.request('accepted-201'), 'accepted-201');
    await c.close(1000);
  });

  test('a failing $connect handler refuses with 502', async () => {
    assert.equal((await openExpectingRefusal(`${gw.url}/?fail=1`)).status, 502);
  });

  test('a refused connection leaves no row and runs no $disconnect', async () => {
    const refused = [...connectEventsWithQuery('status', '403'), ...connectEventsWithQuery('fail', '1')].map((e) => ctx(e).connectionId);
    assert.equal(refused.length, 2, 'the probe saw the $connect of both refused connections');
    // An accepted connection that closes shows when $disconnect events have been processed.
    const c = await Client.open(gw.url);
    const id = await whoami(c);
    await c.close(1000);
    await waitForEvent(gw.eventsPath, (e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === id,
      { what: 'the $disconnect of the accepted connection' });
    await sleep(300);  // a check that something does NOT happen: time for a $disconnect that must not come
    const disconnected = readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'DISCONNECT').map((e) => ctx(e).connectionId);
    for (const r of refused) assert.ok(!disconnected.includes(r), `refused connection ${r} got a $disconnect`);
    const rows = await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections');
    for (const r of refused) assert.ok(!rows.some((row) => row.connection_id === r), `refused connection ${r} has a row`);
  });

  test('a push from inside $connect is the first message after the upgrade', async () => {
    const c = await Client.open(`${gw.url}/?pushself=1`);
    assert.equal(await c.nextText(), 'hello-from-connect');
    assert.equal(await c.request('after-hello'), 'after-hello');
    await c.close(1000);
  });

  test('a slow $connect does not hold up other connections', async () => {
    const slow = Client.open(`${gw.url}/?sleep=1500`, {}, 5000);
    // The probe records the $connect before it sleeps: the slow $connect is running from then on.
    await waitForEvent(gw.eventsPath, (e) => ctx(e).eventType === 'CONNECT' && e.queryStringParameters?.sleep === '1500',
      { what: 'the slow $connect to start' });
    const started = Date.now();
    const fast = await Client.open(gw.url);
    assert.equal(await fast.request('fast'), 'fast');
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `a second connection took ${elapsed} ms while a $connect slept`);
    const s = await slow;
    assert.equal(await s.request('slow-done'), 'slow-done');
    await Promise.all([fast.close(1000), s.close(1000)]);
  });
});

describe('subprotocols', () => {
  let gw;
  before(async () => {
    gw = await Gateway.start({
      routes: (dir) => ({ ...probeRoutes({ routes: ['whoami'] })(dir), subprotocols: ['v2.chat', 'json'] }),
      plugins: ['probe'],
    });
  });
  after(async () => {
    await gw?.stop();
  });

  test('the first offer the API accepts is chosen and returned; the $connect event sees the offers', async () => {
    const plain = await Client.open(gw.url); // a client offering nothing still connects
    assert.equal(plain.ws.protocol, '');
    await plain.close();
    const ws = new (await import('ws')).default(gw.url, ['v3.chat', 'json', 'v2.chat']);
    const client = new Client(ws);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    assert.equal(ws.protocol, 'json', 'the client\'s order of preference wins');
    const id = await whoami(client);
    const connect = await waitForEvent(gw.eventsPath, (e) => ctx(e).connectionId === id && ctx(e).eventType === 'CONNECT');
    assert.equal(connect.headers['Sec-WebSocket-Protocol'], 'v3.chat,json,v2.chat');
    assert.equal(await client.request('still-framed'), 'still-framed');
    await client.close();
  });

  test('offers the API does not accept are refused with 400 naming both lists', async () => {
    const refused = await openExpectingRefusal(gw.url, { protocol: undefined, headers: { 'Sec-WebSocket-Protocol': 'mqtt, soap' } });
    assert.equal(refused.status, 400);
    assert.match(JSON.parse(refused.body).message, /none of the offered subprotocols \(mqtt, soap\) is accepted: this API accepts v2\.chat, json/);
  });
});
