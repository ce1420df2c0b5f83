// The plugin headers' "Since wsgw X.Y" notes and the gateway's version (WSGW_VERSION, meson.build's project
// version, printed by `wsgw --version`) agree: no header promises a feature of a version this gateway has
// not reached. A header that gains a "Since wsgw 0.5" note without the version moving fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, WSGW_BIN } from './harness.mjs';

const headers = ['gateway/include/wsgw/handler.h', 'gateway/include/wsgw/handler.hpp'];
const versionOf = (text) => text.split('.').map(Number);
const compare = (a, b) => (a[0] - b[0]) || (a[1] - b[1]);

test('every "Since wsgw X.Y" of the plugin headers is at most the version `wsgw --version` prints', async () => {
  const { stdout } = await promisify(execFile)(WSGW_BIN, ['--version']);
  const m = /^wsgw (\d+)\.(\d+)\.(\d+) /.exec(stdout);
  assert.ok(m, `\`wsgw --version\` printed ${JSON.stringify(stdout)}, not "wsgw X.Y.Z (...)"`);
  const gateway = [Number(m[1]), Number(m[2])];
  const notes = [];
  for (const rel of headers) {
    const text = fs.readFileSync(path.join(REPO_ROOT, rel), 'utf8');
    for (const note of text.matchAll(/[Ss]ince wsgw (\d+\.\d+)/g)) notes.push({ rel, version: note[1] });
  }
  assert.ok(notes.length >= 3, `expected the since-notes of handler.h (0.2, 0.3, ...) and handler.hpp, found ${JSON.stringify(notes)}`);
  for (const { rel, version } of notes) {
    assert.ok(compare(versionOf(version), gateway) <= 0,
      `${rel} says "Since wsgw ${version}" but the gateway is ${m[1]}.${m[2]}.${m[3]}: raise the version in meson.build's project()`);
  }
  // The wrapper is as new as the newest note of the C header it wraps.
  const newestC = notes.filter((n) => n.rel.endsWith('.h')).map((n) => versionOf(n.version)).sort(compare).pop();
  const hpp = notes.find((n) => n.rel.endsWith('.hpp'));
  assert.ok(compare(versionOf(hpp.version), newestC) >= 0, `handler.hpp says since ${hpp.version}, older than handler.h's newest note`);
});
