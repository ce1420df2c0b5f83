// A `sqlite3` process holding a database's lock until release(): to the gateway, a connection table it
// cannot commit to (as a full disk is), or a database it cannot even read. Shared by the durability,
// fault-audit and shutdown tests, with the clean-up of the gateways and locks a test file takes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after } from 'node:test';
import { Gateway, waitFor, withTimeout } from './harness.mjs';

// The gateways a test file starts and the locks it takes, all let go of after its tests: the locks first,
// so that a gateway waiting on one can end, then the gateways still running, killed.
export function gatewaysAndLocks() {
  const gateways = [];
  const lockHolders = [];
  after(async () => {
    for (const h of lockHolders) await h.release();
    for (const gw of gateways) await gw.stop({ signal: 'SIGKILL', timeoutMs: 5000 }).catch(() => {});
  });
  const start = async (options) => {
    const gw = await Gateway.start(options);
    gateways.push(gw);
    return gw;
  };
  return { gateways, lockHolders, start };
}

// Runs `sql` in a sqlite3 process on `db` until it prints the marker, and adds the holder to `holders`,
// whose release() (COMMIT, then the process's exit) the test's after() calls.
async function holdWith(db, holders, sql, what) {
  const proc = spawn('sqlite3', [db], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (c) => { out += c; });
  proc.stderr.setEncoding('utf8').on('data', (c) => { err += c; });
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  proc.stdin.write(`.timeout 5000\n${sql}SELECT 'locked-' || 'now';\n`);
  await waitFor(() => out.includes('locked-now') || err, { timeoutMs: 8000, what: `sqlite3 to hold ${what}` });
  assert.equal(err, '', `sqlite3 could not take ${what}: ${err}`);
  let released = false;
  const holder = {
    async release() {
      if (released) return;
      released = true;
      proc.stdin.end('COMMIT;\n');
      await withTimeout(exited, 5000, `sqlite3 to exit and let go of ${what}`);
    },
  };
  holders.push(holder);
  return holder;
}

// The write lock (BEGIN EXCLUSIVE): WAL readers still pass.
export function holdWriteLock(db, holders) {
  return holdWith(db, holders, 'BEGIN EXCLUSIVE;\n', 'the write lock');
}

// The database file itself (PRAGMA locking_mode=EXCLUSIVE, then a transaction that reads it): unlike
// BEGIN EXCLUSIVE alone, no other process can even read or set up the database until release() ends the
// holder (the lock is kept until its connection closes).
export function holdWholeDatabase(db, holders) {
  return holdWith(db, holders, 'PRAGMA locking_mode=EXCLUSIVE;\nBEGIN EXCLUSIVE;\nSELECT count(*) FROM connections;\n',
    'the database');
}
