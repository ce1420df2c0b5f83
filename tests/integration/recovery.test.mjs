// After a kill -9 the rows of the dead gateway stay in the table; a restart with the same --node-id finds
// them, runs their $disconnect with a reason that says the stop was unclean, and removes them, while the
// rows of other nodes stay untouched.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, Client, probeRoutes, whoami, sqliteRows, waitFor, readEvents, ctx } from './harness.mjs';

const gateways = [];

after(async () => {
  for (const gw of gateways) await gw.stop();
});

test('kill -9 leaves the rows; a restart on the same db and node cleans them up with their $disconnect', async () => {
  const first = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'], nodeId: 'recovery-node' });
  gateways.push(first);
  const clients = await Promise.all([0, 1, 2].map(() => Client.open(first.url)));
  const ids = [];
  for (const c of clients) ids.push(await whoami(c));
  await waitFor(async () => {
    const rows = await sqliteRows(first.dbPath, 'SELECT connection_id FROM connections');
    return ids.every((id) => rows.some((r) => r.connection_id === id));
  }, { what: 'rows of the 3 connections' });

  const exit = await first.stop({ signal: 'SIGKILL', timeoutMs: 5000 });
  assert.equal(exit.signal, 'SIGKILL');
  await Promise.all(clients.map((c) => c.waitClosed(3000)));

  const left = await sqliteRows(first.dbPath, "SELECT connection_id, node_id FROM connections WHERE node_id = 'recovery-node'");
  assert.deepEqual(left.map((r) => r.connection_id).sort(), [...ids].sort(), 'the killed gateway\'s rows are still there');
  assert.equal(readEvents(first.eventsPath).filter((e) => ctx(e).eventType === 'DISCONNECT').length, 0,
    'no $disconnect ran for a kill -9');

  // A row of another node, copied from a real row so that every column is valid whatever the schema adds.
  const otherId = 'OtherNodeRow0000000000';
  await sqliteRows(first.dbPath, `CREATE TEMP TABLE copy AS SELECT * FROM connections WHERE connection_id = '${ids[0]}';
    UPDATE copy SET connection_id = '${otherId}', node_id = 'other-node';
    INSERT INTO connections SELECT * FROM copy;`);

  const second = await Gateway.start({ dir: first.dir, routes: probeRoutes(), plugins: ['probe'], nodeId: 'recovery-node' });
  gateways.push(second);
  const started = Date.now();
  await waitFor(async () => {
    const rows = await sqliteRows(second.dbPath, "SELECT connection_id FROM connections WHERE node_id = 'recovery-node'");
    return rows.length === 0;
  }, { timeoutMs: 3000, what: 'the stale rows of recovery-node to be removed' });
  assert.ok(Date.now() - started <= 3000);

  const disconnects = await waitFor(() => {
    const d = readEvents(second.eventsPath).filter((e) => ctx(e).eventType === 'DISCONNECT');
    return ids.every((id) => d.some((e) => ctx(e).connectionId === id)) ? d : null;
  }, { what: 'a $disconnect for each of the 3 stale connections' });
  for (const id of ids) {
    const mine = disconnects.filter((e) => ctx(e).connectionId === id);
    assert.equal(mine.length, 1, `exactly one $disconnect for ${id}`);
    const rc = ctx(mine[0]);
    assert.equal(rc.routeKey, '$disconnect');
    assert.match(rc.disconnectReason ?? '', /unclean/i, `disconnectReason: ${rc.disconnectReason}`);
  }
  assert.ok(!disconnects.some((e) => ctx(e).connectionId === otherId), 'no $disconnect for another node\'s row');
  const other = await sqliteRows(second.dbPath, `SELECT node_id FROM connections WHERE connection_id = '${otherId}'`);
  assert.deepEqual(other, [{ node_id: 'other-node' }], 'another node\'s row is left alone');

  // The restarted gateway serves as usual.
  const c = await Client.open(second.url);
  const id = await whoami(c);
  await waitFor(async () => (await sqliteRows(second.dbPath, `SELECT 1 AS one FROM connections WHERE connection_id = '${id}'`)).length === 1,
    { what: 'the new connection\'s row' });
  await c.close(1000);
});
