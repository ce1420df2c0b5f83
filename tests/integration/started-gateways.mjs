// Gateways a test file starts and does not stop itself: each is stopped when the file's tests end, even when a
// test failed half-way. Imported by the lambda test files, which otherwise each kept this list and hook.
import { after } from 'node:test';

import { Gateway } from './harness.mjs';

const started = [];
after(async () => {
  for (const gw of started) await gw.stop().catch(() => {});
});

// Gateway.start(options), stopped after the file's last test.
export async function startGateway(options) {
  const gw = await Gateway.start(options);
  started.push(gw);
  return gw;
}
