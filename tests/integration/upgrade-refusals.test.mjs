// Upgrades that the gateway's own checks once passed, that ran $connect and that libwebsockets 4.1.6 then
// refused (an HTML 403, or a silent close and $disconnect with 1006): each now gets our 400 or 431 with a
// reason before $connect (gateway/core/lws_upgrade_rules.h), and the request just inside
// each limit still upgrades. Raw TCP: no client library sends these heads.
//
// Fragment arithmetic (libwebsockets keeps at most 94): 2 for the request line, 1 per query parameter (the
// tag parameter each request carries included), 1 per line of a header it knows: the 5 of `head` below.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, ctx, probeRoutes, rawHttp, readEvents, waitFor } from './harness.mjs';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const rep = (s, n) => s.repeat(n);

// `query` without the tag; `extra`: more header lines, each ending in CRLF.
function head(tag, { path = '/', query = '', upgrade = 'websocket', connection = 'Connection: Upgrade\r\n', host = 'Host: 127.0.0.1\r\n',
  key = KEY, extra = '' } = {}) {
  const target = `${path}?${query ? `${query}&` : ''}tag=${tag}`;
  return `GET ${target} HTTP/1.1\r\n${host}Upgrade: ${upgrade}\r\n${connection}Sec-WebSocket-Key: ${key}\r\n` +
    `Sec-WebSocket-Version: 13\r\n${extra}\r\n`;
}

const refused = [
  { name: 'Upgrade: "websocket " (a trailing space)', opts: { upgrade: 'websocket ' }, status: 400, reason: /byte for byte.*"Upgrade: websocket"/ },
  { name: 'Upgrade: "websocket\\t" (a trailing tab)', opts: { upgrade: 'websocket\t' }, status: 400, reason: /byte for byte/ },
  { name: 'Upgrade: "\\twebsocket" (a tab before)', opts: { upgrade: '\twebsocket' }, status: 400, reason: /byte for byte/ },
  { name: '120 empty query parameters', opts: { query: `a${rep('&', 120)}b` }, status: 431, reason: /122 query parameters \(each '&' or ';' starts one, even an empty one\)/ },
  { name: '88 query parameters, empty ones', opts: { query: `a${rep('&', 86)}` }, status: 431, reason: /88 query parameters.*95 places of its 94/ },
  { name: "88 query parameters separated by ';'", opts: { query: `${rep('a;', 86)}b` }, status: 431, reason: /88 query parameters/ },
  { name: "88 '&' in the path", opts: { path: `/${rep('a&', 88)}` }, status: 431, reason: /88 '&' or ';' in the path/ },
  { name: '87 x X-Forwarded-For', opts: { extra: rep('X-Forwarded-For: 10.0.0.1\r\n', 87) }, status: 431, reason: /X-Forwarded-For x87/ },
  { name: '90 x X-Forwarded-For', opts: { extra: rep('X-Forwarded-For: 10.0.0.1\r\n', 90) }, status: 431, reason: /X-Forwarded-For x90/ },
  { name: '90 x X-Real-IP', opts: { extra: rep('X-Real-IP: 10.0.0.1\r\n', 90) }, status: 431, reason: /X-Real-IP x90/ },
  { name: '90 x X-Auth-Token', opts: { extra: rep('X-Auth-Token: t\r\n', 90) }, status: 431, reason: /X-Auth-Token x90/ },
  { name: 'a Put-Id header (2 fragments) with 85 x X-Forwarded-For', opts: { extra: `${rep('X-Forwarded-For: 1\r\n', 85)}Put-Id: 1\r\n` }, status: 431, reason: /2 for headers named like an HTTP method/ },
  { name: 'two headers whose names begin with "put"', opts: { extra: 'Put-Id: 1\r\nPut-Other: 2\r\n' }, status: 400, reason: /"Put-Other" begins with "put".*HTTP method/ },
  { name: 'a header "Delete%zz" (read as a URL by libwebsockets)', opts: { extra: 'Delete%zz: 1\r\n' }, status: 400, reason: /malformed percent-escape "%zz"/ },
  { name: 'a Connection value of 127 bytes', opts: { connection: `Connection: Upgrade, ${rep('x', 118)}\r\n` }, status: 431, reason: /Connection header is 127 bytes/ },
  { name: 'a Connection value padded with spaces to 127 bytes', opts: { connection: `Connection: Upgrade${rep(' ', 120)}\r\n` }, status: 431, reason: /127 bytes/ },
  { name: 'two Connection headers of about 150 bytes in all', opts: { connection: `Connection: ${rep('k', 70)}\r\nConnection: Upgrade, ${rep('u', 70)}\r\n` }, status: 431, reason: /every Connection line joined with commas/ },
  { name: 'Connection: keep alive, Upgrade (two tokens without a comma)', opts: { connection: 'Connection: keep alive, Upgrade\r\n' }, status: 400, reason: /gives up at byte 6 \("alive, Upgrade"\)/ },
  { name: 'Connection: 5, Upgrade (a number)', opts: { connection: 'Connection: 5, Upgrade\r\n' }, status: 400, reason: /comma-separated list/ },
  { name: 'an empty Connection line before Connection: Upgrade', opts: { connection: 'Connection:\r\nConnection: Upgrade\r\n' }, status: 400, reason: /", Upgrade"/ },
  { name: 'an empty Host', opts: { host: 'Host:\r\n' }, status: 400, reason: /empty Host header/ },
  { name: 'a blank Host', opts: { host: 'Host:   \r\n' }, status: 400, reason: /empty Host header/ },
  { name: 'a space after the Sec-WebSocket-Key (the 101 would carry a wrong Sec-WebSocket-Accept)', opts: { key: `${KEY} ` }, status: 400, reason: /Sec-WebSocket-Accept/ },
];

// The request just inside each limit above.
const accepted = [
  { name: '87 query parameters, empty ones', opts: { query: `a${rep('&', 85)}` } },
  { name: "87 query parameters separated by ';'", opts: { query: `${rep('a;', 85)}b` } },
  { name: "86 '&' in the path, and '&' after a '/' that costs nothing", opts: { path: `/${rep('a&', 86)}${rep('/&', 20)}` } },
  { name: '86 x X-Forwarded-For', opts: { extra: rep('X-Forwarded-For: 10.0.0.1\r\n', 86) } },
  { name: '90 x X-Forwarded-Host (a header libwebsockets does not know)', opts: { extra: rep('X-Forwarded-Host: h\r\n', 90) } },
  { name: 'a Put-Id header with 84 x X-Forwarded-For', opts: { extra: `${rep('X-Forwarded-For: 1\r\n', 84)}Put-Id: 1\r\n` } },
  { name: 'headers beginning with "put", "patch" and "delete", one each', opts: { extra: 'Put-Id: 1\r\nPatch-Level: 2\r\nDelete-After: 3\r\n' } },
  { name: 'a Connection value of 126 bytes', opts: { connection: `Connection: Upgrade, ${rep('x', 117)}\r\n` } },
  { name: 'two Connection headers of 126 bytes in all', opts: { connection: `Connection: ${rep('k', 60)}\r\nConnection: Upgrade, ${rep('u', 54)}\r\n` } },
  { name: 'Upgrade and Sec-WebSocket-Key after several spaces', opts: { upgrade: '    websocket', key: `   ${KEY}` } },
];

describe('upgrades libwebsockets would refuse get our 4xx before $connect', () => {
  let gw;
  let n = 0;
  before(async () => {
    gw = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'] });
  });
  after(async () => {
    await gw?.stop();
  });

  const connectsTagged = (tag) => readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'CONNECT' && e.queryStringParameters?.tag === tag);

  for (const c of refused) {
    test(`${c.name}: ${c.status} with a reason, no $connect`, async () => {
      const tag = `refused${n++}`;
      const res = await rawHttp(gw.port, head(tag, c.opts));
      assert.equal(res.status, c.status, `${res.status} ${res.body}`);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.match(JSON.parse(res.body).message, c.reason);
      // A refusal by libwebsockets came only after $connect had run, so its event would be there already;
      // a later upgrade's $connect, once seen, shows the probe's log is current.
      const sentinel = `sentinel${n++}`;
      assert.equal((await rawHttp(gw.port, head(sentinel))).status, 101);
      await waitFor(() => connectsTagged(sentinel).length === 1, { what: "the sentinel upgrade's $connect" });
      assert.deepEqual(connectsTagged(tag), [], '$connect did not run for the refused upgrade');
    });
  }

  for (const c of accepted) {
    test(`${c.name}: still upgrades (101, $connect ran)`, async () => {
      const tag = `accepted${n++}`;
      const res = await rawHttp(gw.port, head(tag, c.opts));
      assert.equal(res.status, 101, `${res.status} ${res.body}`);
      assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
      await waitFor(() => connectsTagged(tag).length === 1, { what: `the $connect of ${c.name}` });
    });
  }
});
