// Floods of bad credentials (docs/security.md, "Bad credentials"): Azure Web PubSub REST calls and client
// upgrades with missing, malformed and wrongly signed tokens, $connect with a JWT authorizer and garbage
// tokens, management requests with a wrong bearer token, a wrong SigV4 signature or that cannot be parsed.
// Each gets its clear answer (401 without a credential, 403 with a wrong one, a JSON reason), the gateway keeps
// nothing per refused request, and the application log gets at most 10 refusal lines a second per thread,
// the next line saying how many were left out: at thousands a second, a line each filled a disk.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Gateway, rawHttp, rssKb, sanitized, waitFor } from './harness.mjs';
import { WebPubSubServiceClient } from '@azure/web-pubsub';

const KEY = 'wsgw-floods-access-key-0123456789abcdefghijklm';
const JWT_SECRET = 'the-route-authorizer-secret-0123456789abcdef';
const ROUNDS = 150;  // of each kind of bad request below
const started = [];
after(async () => {
  for (const stop of started.reverse()) await stop().catch(() => {});
});

function hs256(payload, secret) {
  const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${head}.${body}.${crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
}

function routes(dir) {
  fs.writeFileSync(path.join(dir, 'credentials.json'), JSON.stringify({
    tokens: ['the-right-management-token'], sigv4: [{ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'the-right-secret-key' }],
  }));
  return {
    routeSelectionExpression: '$request.body.action',
    webPubSub: { hubs: ['chat'], accessKeys: [KEY], recoveryWindowSeconds: 0 },
    routes: {
      $connect: { handler: 'echo', authorizer: { type: 'jwt', algorithms: ['HS256'], secret: JWT_SECRET } },
      $disconnect: { handler: 'echo' },
      $default: { handler: 'echo', routeResponse: true },
    },
  };
}

const isRefusalLine = (l) => ['upgrade refused', 'connect refused', 'upgrade closed at once'].includes(l.msg);

test('floods of bad credentials get clear answers, keep nothing, and log at most 10 refusal lines a second', async (t) => {
  const gw = await Gateway.start({ routes, plugins: ['echo'],
                                   extraArgs: ['--access-log', 'off', '--network-threads', '1', '--management-credentials', 'credentials.json'] });
  started.push(() => gw.stop());
  const host = `127.0.0.1:${gw.port}`;
  const mport = Number(gw.managementUrl.split(':').pop());
  const restPath = '/api/hubs/chat/:send?api-version=2024-12-01';
  const wrongKey = 'x'.repeat(44);
  const upgrade = (target) => `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                              'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  const rest = (auth) => `POST ${restPath} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/plain\r\n` +
                         `${auth ? `Authorization: ${auth}\r\n` : ''}Content-Length: 2\r\n\r\nhi`;
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d+/g, '');
  const kinds = [
    // [what, port, request, status, what the answer's reason says]
    ['REST without a token', gw.port, () => rest(''), 401, /no bearer token/],
    ['REST with a malformed token', gw.port, (i) => rest(`Bearer not.a${i}.jwt`), 403, /base64url|JSON/],
    ['REST with a token of another key', gw.port, () => rest(`Bearer ${hs256({ aud: `http://${host}${restPath}`, exp: 4e9 }, wrongKey)}`), 403,
     /signature verification failed/],
    ['REST with a 7,000-byte token', gw.port, () => rest(`Bearer ${'A'.repeat(7000)}`), 403, /dot-separated parts/],
    ['a client without a token', gw.port, () => upgrade('/client/hubs/chat'), 401, /token/],
    ['a client with a malformed token', gw.port, (i) => upgrade(`/client/hubs/chat?access_token=bad${i}`), 403, /dot-separated parts/],
    ['a client with a token of another key', gw.port,
     () => upgrade(`/client/hubs/chat?access_token=${hs256({ aud: `http://${host}/client/hubs/chat`, exp: 4e9 }, wrongKey)}`), 403,
     /signature verification failed/],
    ['$connect without a token', gw.port, () => upgrade('/'), 401, /no token/],
    ['$connect with a garbage token', gw.port, (i) => upgrade(`/?access_token=garbage${i}`), 401, /dot-separated parts/],
    ['$connect with a token of another secret', gw.port, () => upgrade(`/?access_token=${hs256({ sub: 'x', exp: 4e9 }, wrongKey)}`), 403,
     /signature verification failed/],
    ['management with a wrong bearer token', mport, (i) => `GET /@connections/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong${i}\r\n\r\n`,
     403, /bearer token is not valid/],
    ['management with a wrong SigV4 signature', mport,
     () => `POST /@connections/x HTTP/1.1\r\nHost: x\r\nX-Amz-Date: ${amzDate}\r\nAuthorization: AWS4-HMAC-SHA256 ` +
           `Credential=AKIDEXAMPLE/${amzDate.slice(0, 8)}/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, ` +
           `Signature=${'0'.repeat(64)}\r\nContent-Length: 2\r\n\r\nhi`, 403, /signature does not match/],
    ['a management request that cannot be parsed', mport, () => 'GET /@connections/x HTTP/1.1\r\nContent-Length: x\r\n\r\n', 400, /Content-Length/],
  ];
  const service = new WebPubSubServiceClient(`Endpoint=http://${host};AccessKey=${KEY};Version=1.0;`, 'chat', { allowInsecureConnection: true });
  await service.sendToAll('warm-up', { contentType: 'text/plain' });
  const rssBefore = rssKb(gw.proc.pid);
  const linesBefore = gw.lines.length;
  const floodStarted = Date.now();
  let upgradeRefusals = 0;
  for (const [what, port, request, status, reason] of kinds) {
    for (let i = 0; i < ROUNDS; i += 25) {
      const answers = await Promise.all(Array.from({ length: 25 }, (_, j) => rawHttp(port, request(i + j))));
      for (const a of answers) {
        assert.equal(a.status, status, `${what}: ${a.status} ${a.body}`);
        const body = JSON.parse(a.body);
        assert.match(body.message, reason, `${what}: ${a.body}`);
      }
    }
    if (port === gw.port && !what.startsWith('REST')) upgradeRefusals += ROUNDS;
    // A good call is still answered, at once, while the bad ones come.
    await service.sendToAll('between', { contentType: 'text/plain' });
  }
  const floodSeconds = (Date.now() - floodStarted) / 1000;
  const grewKb = rssKb(gw.proc.pid) - rssBefore;
  const refusalLines = () => gw.lines.slice(linesBefore).filter(isRefusalLine);
  const managementLines = () => gw.lines.slice(linesBefore).filter((l) => l.msg === 'management request refused');
  t.diagnostic(`${kinds.length * ROUNDS} bad requests in ${floodSeconds.toFixed(1)} s: ${refusalLines().length} refusal lines of ` +
               `${upgradeRefusals} refused upgrades, ${managementLines().length} of ${ROUNDS} management parse refusals; grew ${grewKb} kB`);
  // One thread refuses the upgrades and one the management requests: each writes at most 10 lines a second.
  const bound = 10 * (Math.ceil(floodSeconds) + 1);
  assert.ok(refusalLines().length <= bound, `${refusalLines().length} refusal lines in ${floodSeconds} s`);
  assert.ok(managementLines().length <= bound, `${managementLines().length} management refusal lines in ${floodSeconds} s`);
  if (!sanitized(gw.proc.pid)) assert.ok(grewKb < 8192, `the gateway grew ${grewKb} kB over the flood`);

  // A second later the next refusal is logged, with how many were left out: together every refusal is told.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  assert.equal((await rawHttp(gw.port, upgrade('/'))).status, 401);
  await waitFor(() => refusalLines().length > 0 && refusalLines().at(-1).msg === 'connect refused' &&
                      refusalLines().reduce((n, l) => n + 1 + l.notLogged, 0) === upgradeRefusals + 1,
                { what: 'a refusal line whose notLogged completes the count' });
  assert.ok(refusalLines().at(-1).notLogged > 0);
  await gw.stop();  // a clean exit: no sanitizer report
});
