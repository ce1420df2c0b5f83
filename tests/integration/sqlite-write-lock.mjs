// A `sqlite3` process holding a database's write lock (BEGIN EXCLUSIVE) until release(): to the gateway, a
// connection table it cannot commit to, as a full disk is. Shared by the durability and fault-audit tests.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { waitFor, withTimeout } from './harness.mjs';

// Takes the lock on `db` and adds the holder to `holders`, whose release() the test's after() calls.
export async function holdWriteLock(db, holders) {
  const proc = spawn('sqlite3', [db], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (c) => { out += c; });
  proc.stderr.setEncoding('utf8').on('data', (c) => { err += c; });
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  proc.stdin.write(".timeout 5000\nBEGIN EXCLUSIVE;\nSELECT 'locked-' || 'now';\n");
  await waitFor(() => out.includes('locked-now') || err, { timeoutMs: 8000, what: 'sqlite3 to hold the write lock' });
  assert.equal(err, '', `sqlite3 could not take the lock: ${err}`);
  let released = false;
  const holder = {
    async release() {
      if (released) return;
      released = true;
      proc.stdin.end('COMMIT;\n');
      await withTimeout(exited, 5000, 'sqlite3 to exit after COMMIT');
    },
  };
  holders.push(holder);
  return holder;
}

// Takes the database file itself (PRAGMA locking_mode=EXCLUSIVE, then a transaction that reads it): unlike
// BEGIN EXCLUSIVE alone, which WAL readers pass, no other process can even read or set up the database until
// release() ends the holder (the lock is kept until its connection closes).
export async function holdWholeDatabase(db, holders) {
  const proc = spawn('sqlite3', [db], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (c) => { out += c; });
  proc.stderr.setEncoding('utf8').on('data', (c) => { err += c; });
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  proc.stdin.write(".timeout 5000\nPRAGMA locking_mode=EXCLUSIVE;\nBEGIN EXCLUSIVE;\nSELECT count(*) FROM connections;\nSELECT 'locked-' || 'now';\n");
  await waitFor(() => out.includes('locked-now') || err, { timeoutMs: 8000, what: 'sqlite3 to hold the database' });
  assert.equal(err, '', `sqlite3 could not take the database: ${err}`);
  let released = false;
  const holder = {
    async release() {
      if (released) return;
      released = true;
      proc.stdin.end('COMMIT;\n');
      await withTimeout(exited, 5000, 'sqlite3 to exit (and let go of the database)');
    },
  };
  holders.push(holder);
  return holder;
}
