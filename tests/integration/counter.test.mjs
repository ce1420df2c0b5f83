// The counter sample (handlers/counter), the handler written with the C++ wrapper <wsgw/handler.hpp>,
// through the real gateway, in-process and isolated: replies made by Response::send, state shared by
// the connections of one instance, an exception thrown by onMessage as an integration error with the
// wrapper's log line (the connection stays open), $connect joining a group, $disconnect's log line, and
// a constructor that refuses its config.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, Client, errorFrameRegex } from './harness.mjs';

// A connection's ID, from the error frame a non-number gets (the frame names the connection).
async function whoIs(client) {
  const frame = await client.request('?');
  const [, id] = errorFrameRegex('Internal server error').exec(frame) ?? [];
  assert.ok(id, `expected AWS's error frame, got ${frame}`);
  return id;
}

const routes = (handler) => ({
  routeSelectionExpression: '$request.body.action',
  handlers: { counter: handler },
  routes: {
    $connect: { handler: 'counter' },
    $disconnect: { handler: 'counter' },
    $default: { handler: 'counter', routeResponse: true },
  },
});

const gateways = [];
after(async () => {
  for (const gw of gateways) await gw.stop();
});

async function start(handler) {
  const gw = await Gateway.start({ routes: routes(handler), plugins: ['counter'] });
  gateways.push(gw);
  return gw;
}

for (const [mode, handler] of [['in-process', { config: { group: 'tally' } }],
                               ['isolated', { config: { group: 'tally' }, isolation: 'process', workers: 1 }]]) {
  test(`${mode}: counts per connection and in total, and an exception is an integration error with the wrapper's log line`, async () => {
    const gw = await start(handler);
    const a = await Client.open(gw.url);
    const b = await Client.open(gw.url);
    assert.deepEqual(JSON.parse(await a.request('5')), { mine: 5, total: 5 });
    assert.deepEqual(JSON.parse(await b.request('')), { mine: 1, total: 6 });  // empty counts as 1
    assert.deepEqual(JSON.parse(await a.request('-2')), { mine: 3, total: 4 });

    const refused = await a.request('five');
    const [, id] = errorFrameRegex('Internal server error').exec(refused) ?? [];
    assert.ok(id, `expected AWS's error frame, got ${refused}`);
    const line = await gw.waitForLog((l) => l.level === 'error' && /counter::onMessage threw/.test(l.msg ?? ''), 5000,
      'the wrapper\'s "threw" log line');
    assert.equal(line.msg, 'counter::onMessage threw: counter: send a whole number from -1000000000 to 1000000000, got "five"');
    assert.deepEqual(JSON.parse(await a.request('+1')), { mine: 4, total: 5 }, 'the connection and the instance live on');

    // $connect joined both connections to the configured group.
    const group = await (await fetch(`${gw.managementUrl}/@groups/tally`)).json();
    assert.deepEqual([...group.connections].sort(), [id, (await whoIs(b))].sort());

    await a.close(1000);
    await gw.waitForLog((l) => l.level === 'info' && l.msg === `counter: ${id} left having counted 4`, 5000, '$disconnect\'s log line');
    await b.close(1000);
  });
}

test('a config the constructor refuses: the gateway starts, the reason is logged, every event is an integration error', async () => {
  const gw = await start({ config: { group: 7 } });
  await gw.waitForLog((l) => l.level === 'error' && l.msg === 'counter constructor threw: counter: config "group" must be a non-empty string',
    5000, 'the constructor\'s log line');
  await assert.rejects(Client.open(gw.url), /HTTP 502/, '$connect fails: the upgrade is refused with 502');
  await gw.waitForLog((l) => l.level === 'error' && /^handler not constructed: counter: config "group"/.test(l.msg ?? ''), 5000,
    'the per-event log line');
});
