// Route selection as docs/routes-json.md ("Route selection") defines it, observed from outside: which route ran
// is read from the probe's event log (requestContext.routeKey of the MESSAGE event carrying the body we sent).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, Client, probeRoutes, waitForEvent, ctx, whoami, errorFrameRegex, readEvents } from './harness.mjs';

let nonce = 0;

// Sends `body` (a string, an object to serialise, or a Buffer), waits for the probe's answer and returns
// the routeKey the gateway chose for it.
async function routeOf(gw, client, id, body) {
  let payload;
  if (Buffer.isBuffer(body) || typeof body === 'string') payload = body;
  else payload = JSON.stringify({ ...body, n: ++nonce });
  client.send(payload);
  const reply = await client.next();
  const expectedBody = Buffer.isBuffer(payload) ? payload.toString('base64') : payload;
  const ev = await waitForEvent(gw.eventsPath,
    (e) => ctx(e).eventType === 'MESSAGE' && ctx(e).connectionId === id && e.body === expectedBody,
    { what: `the MESSAGE event of ${JSON.stringify(expectedBody).slice(0, 80)}` });
  // The probe answers with the body itself unless it names one of its actions.
  assert.ok(Buffer.from(reply.data).equals(Buffer.from(payload)), `reply ${reply.data.toString('hex')}`);
  return ctx(ev).routeKey;
}

describe('expression $request.body.action', () => {
  let gw;
  let c;
  let id;
  before(async () => {
    gw = await Gateway.start({ routes: probeRoutes({ routes: ['custom', '5', '5.0', '1e2', 'true', 'CUSTOMER'] }), plugins: ['probe'] });
    c = await Client.open(gw.url);
    id = await whoami(c);
  });
  after(async () => {
    c?.terminate();
    await gw?.stop();
  });

  test('a custom key selects its route', async () => {
    assert.equal(await routeOf(gw, c, id, { action: 'custom' }), 'custom');
  });

  test('keys are matched exactly and case-sensitively', async () => {
    assert.equal(await routeOf(gw, c, id, { action: 'CUSTOM' }), '$default');
    assert.equal(await routeOf(gw, c, id, { action: 'CUSTOMER' }), 'CUSTOMER');
    assert.equal(await routeOf(gw, c, id, { action: 'custom ' }), '$default');
  });

  test('a number selects the route named by its JSON text as written', async () => {
    assert.equal(await routeOf(gw, c, id, '{"action":5,"n":"num-int"}'), '5');
    assert.equal(await routeOf(gw, c, id, '{"action":5.0,"n":"num-float"}'), '5.0');
    assert.equal(await routeOf(gw, c, id, '{"action":1e2,"n":"num-exp"}'), '1e2');
    assert.equal(await routeOf(gw, c, id, '{"action":"5","n":"num-string"}'), '5');
    assert.equal(await routeOf(gw, c, id, '{"action":7,"n":"num-unrouted"}'), '$default');
  });

  test('a boolean selects the route named by its JSON text', async () => {
    assert.equal(await routeOf(gw, c, id, { action: true }), 'true');
    assert.equal(await routeOf(gw, c, id, { action: false }), '$default');
  });

  test('every fallback goes to $default', async (t) => {
    const cases = [
      ['non-JSON text', 'this is not json {'],
      ['binary frame holding JSON that names a route', Buffer.from('{"action":"custom"}')],
      ['binary frame of arbitrary bytes', Buffer.from([0xff, 0x00, 0x80])],
      ['missing value', { other: 'custom' }],
      ['null value', { action: null }],
      ['object value', { action: { name: 'custom' } }],
      ['array value', { action: ['custom'] }],
      ['unknown key', { action: 'no-such-route' }],
      ['"$connect" as value', { action: '$connect' }],
      ['"$disconnect" as value', { action: '$disconnect' }],
      ['JSON array body', '["custom"]'],
      ['JSON string body', '"custom"'],
      ['empty string key', { action: '' }],
    ];
    for (const [name, body] of cases) {
      await t.test(name, async () => {
        assert.equal(await routeOf(gw, c, id, body), '$default');
      });
    }
  });

  test('a "$connect" value runs no $connect and no $disconnect', async () => {
    await routeOf(gw, c, id, { action: '$connect' });
    const kinds = readEvents(gw.eventsPath).filter((e) => ctx(e).connectionId === id).map((e) => ctx(e).eventType);
    assert.equal(kinds.filter((k) => k === 'CONNECT').length, 1);
    assert.equal(kinds.filter((k) => k === 'DISCONNECT').length, 0);
  });
});

describe('expression with a nested path $request.body.meta.type', () => {
  let gw;
  let c;
  let id;
  before(async () => {
    gw = await Gateway.start({ routes: probeRoutes({ expression: '$request.body.meta.type', routes: ['alpha', 'meta'] }), plugins: ['probe'] });
    c = await Client.open(gw.url);
    id = await whoami(c);
  });
  after(async () => {
    c?.terminate();
    await gw?.stop();
  });

  test('the nested value selects its route', async () => {
    assert.equal(await routeOf(gw, c, id, { meta: { type: 'alpha' } }), 'alpha');
    assert.equal(await routeOf(gw, c, id, { action: 'meta', meta: { type: 'alpha', more: [1] } }), 'alpha');
  });

  test('a path that does not resolve to a scalar goes to $default', async () => {
    assert.equal(await routeOf(gw, c, id, { meta: 'alpha' }), '$default');
    assert.equal(await routeOf(gw, c, id, { type: 'alpha' }), '$default');
    assert.equal(await routeOf(gw, c, id, { meta: { type: { deep: 'alpha' } } }), '$default');
    assert.equal(await routeOf(gw, c, id, { meta: { kind: 'alpha' } }), '$default');
  });
});

describe('template expression ${request.body.service}/${request.body.action}', () => {
  let gw;
  let c;
  let id;
  before(async () => {
    gw = await Gateway.start({
      routes: probeRoutes({ expression: '${request.body.service}/${request.body.action}', routes: ['orders/place', 'orders/', '/place'] }),
      plugins: ['probe'],
    });
    c = await Client.open(gw.url);
    id = await whoami(c);
  });
  after(async () => {
    c?.terminate();
    await gw?.stop();
  });

  test('the parts are joined with the literal text', async () => {
    assert.equal(await routeOf(gw, c, id, { service: 'orders', action: 'place' }), 'orders/place');
  });

  test('a missing part is the empty string', async () => {
    assert.equal(await routeOf(gw, c, id, { service: 'orders' }), 'orders/');
    assert.equal(await routeOf(gw, c, id, { action: 'place' }), '/place');
  });

  test('a joined key with no route goes to $default', async () => {
    assert.equal(await routeOf(gw, c, id, { service: 'orders', action: 'cancel' }), '$default');
    assert.equal(await routeOf(gw, c, id, 'not json at all'), '$default');
  });
});

describe('a route table without $default', () => {
  let gw;
  let c;
  let id;
  before(async () => {
    gw = await Gateway.start({ routes: probeRoutes({ withDefault: false, routes: ['whoami', 'custom'] }), plugins: ['probe'] });
    c = await Client.open(gw.url);
    id = await whoami(c);
  });
  after(async () => {
    c?.terminate();
    await gw?.stop();
  });

  test('an unmatched message gets AWS\'s Forbidden frame, spaced exactly, and runs no handler', async () => {
    const before = readEvents(gw.eventsPath).length;
    const frame = await c.request('{"action":"nope","n":"forbidden-1"}');
    const m = errorFrameRegex('Forbidden').exec(frame);
    assert.ok(m, `frame ${JSON.stringify(frame)} is not {"message": "Forbidden", "connectionId":"<id>", "requestId":"<id>"}`);
    assert.equal(m[1], id);
    assert.ok(m[2].length > 0);
    // The probe would have logged any invocation; the whoami below proves the log is current.
    assert.equal(await c.request(JSON.stringify({ action: 'whoami' })), id);
    const logged = readEvents(gw.eventsPath).slice(before);
    assert.deepEqual(logged.filter((e) => e.body === '{"action":"nope","n":"forbidden-1"}'), []);
  });

  test('non-JSON and binary messages get the Forbidden frame too, each with its own requestId', async () => {
    const a = errorFrameRegex('Forbidden').exec(await c.request('plain text'));
    c.send(Buffer.from([1, 2, 3]));
    const b = errorFrameRegex('Forbidden').exec(await c.nextText());
    assert.ok(a && b);
    assert.equal(a[1], id);
    assert.equal(b[1], id);
    assert.notEqual(a[2], b[2]);
  });

  test('the connection stays open and matched routes still run', async () => {
    assert.equal(await c.request('{"action":"custom","n":"still-open"}'), '{"action":"custom","n":"still-open"}');
    assert.equal(c.closeInfo, null);
  });
});

describe('a static expression', () => {
  let gw;
  let c;
  let id;
  before(async () => {
    gw = await Gateway.start({ routes: probeRoutes({ expression: 'fixed', routes: ['fixed'] }), plugins: ['probe'] });
    c = await Client.open(gw.url);
    id = await whoami(c);
  });
  after(async () => {
    c?.terminate();
    await gw?.stop();
  });

  test('selects its key for every JSON message', async () => {
    assert.equal(await routeOf(gw, c, id, { action: 'other' }), 'fixed');
    assert.equal(await routeOf(gw, c, id, { nothing: 1 }), 'fixed');
  });
});
