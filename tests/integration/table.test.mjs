// The connection table (docs/operations.md, "The connection table") read with the sqlite3 CLI while wsgw runs
// (WAL): a row per live connection, gone after close; SIGTERM drains (clients see 1001, every $disconnect runs,
// the table is empty, exit 0) and every log line is one JSON object.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, Client, probeRoutes, whoami, sqliteRows, waitFor, readEvents, ctx } from './harness.mjs';

let gw;

before(async () => {
  gw = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'], nodeId: 'table-node' });
});

after(async () => {
  await gw?.stop();
});

const rowsById = async () => {
  const rows = await sqliteRows(gw.dbPath, 'SELECT * FROM connections');
  return new Map(rows.map((r) => [r.connection_id, r]));
};

test('the database is in WAL mode', async () => {
  const [row] = await sqliteRows(gw.dbPath, 'PRAGMA journal_mode');
  assert.equal(row.journal_mode, 'wal');
});

test('a row per live connection with source_ip, user_agent and node_id; gone after close', async () => {
  const c1 = await Client.open(gw.url, { headers: { 'User-Agent': 'table-agent/1' } });
  const c2 = await Client.open(`${gw.url}/?room=7`, { headers: { 'User-Agent': 'table-agent/2' } });
  const id1 = await whoami(c1);
  const id2 = await whoami(c2);
  assert.notEqual(id1, id2);

  const rows = await waitFor(async () => {
    const m = await rowsById();
    return m.has(id1) && m.has(id2) ? m : null;
  }, { what: 'rows of both connections' });
  for (const [id, agent] of [[id1, 'table-agent/1'], [id2, 'table-agent/2']]) {
    const row = rows.get(id);
    assert.equal(row.source_ip, '127.0.0.1', `row ${JSON.stringify(row)}`);
    assert.equal(row.user_agent, agent);
    assert.equal(row.node_id, 'table-node');
  }

  await c1.close(1000);
  const after = await waitFor(async () => {
    const m = await rowsById();
    return !m.has(id1) ? m : null;
  }, { what: `the row of ${id1} to disappear after its close` });
  assert.ok(after.has(id2), 'the other connection keeps its row');

  c2.terminate();
  await waitFor(async () => !(await rowsById()).has(id2), { what: `the row of ${id2} to disappear after a dropped TCP connection` });
});

test('SIGTERM drains: clients see 1001, every $disconnect runs, the table is empty, exit 0', async () => {
  const clients = await Promise.all([0, 1, 2].map(() => Client.open(gw.url)));
  const ids = [];
  for (const c of clients) ids.push(await whoami(c));
  await waitFor(async () => {
    const m = await rowsById();
    return ids.every((id) => m.has(id));
  }, { what: 'rows of the 3 connections' });

  const exit = await gw.stop({ signal: 'SIGTERM', timeoutMs: 15000 });
  assert.ok(!gw.killedAfterTimeout, 'wsgw exited on its own after SIGTERM');
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null });

  const closes = await Promise.all(clients.map((c) => c.waitClosed(3000)));
  for (const close of closes) assert.equal(close.code, 1001);

  const disconnects = readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'DISCONNECT');
  for (const id of ids) {
    const mine = disconnects.filter((e) => ctx(e).connectionId === id);
    assert.equal(mine.length, 1, `exactly one $disconnect for ${id}`);
    assert.equal(ctx(mine[0]).disconnectStatusCode, 1001);
  }
  const rows = await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections');
  assert.deepEqual(rows, []);
});

test('every stdout line was one JSON object with time, level and msg', () => {
  assert.ok(gw.rawLines.length > 0);
  for (const line of gw.rawLines) {
    let obj;
    assert.doesNotThrow(() => { obj = JSON.parse(line); }, `not JSON: ${line}`);
    assert.equal(typeof obj, 'object');
    assert.equal(typeof obj.msg, 'string', line);
    assert.equal(typeof obj.time, 'string', line);
    assert.ok(['debug', 'info', 'warn', 'error'].includes(obj.level), line);
  }
  assert.deepEqual(gw.errorLines(), [], `error lines:\n${gw.errorLines().map((l) => JSON.stringify(l)).join('\n')}`);
});
