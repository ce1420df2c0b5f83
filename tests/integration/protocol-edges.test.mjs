// What libwebsockets would refuse is refused before $connect, with our own status and reason;
// and a client's malformed close frame fails the connection (Autobahn|Testsuite 7.5.1 and
// 7.9.x) instead of being echoed, while a valid one is echoed with its code and reason.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, RawWebSocket, ctx, maskedFrame, probeRoutes, rawHttp, readEvents, waitFor } from './harness.mjs';

const upgradeHead = (target, upgrade = 'websocket') =>
  `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: ${upgrade}\r\nConnection: Upgrade\r\n` +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

describe('answers before $connect and close frames', () => {
  let gw;
  before(async () => {
    gw = await Gateway.start({ routes: probeRoutes(), plugins: ['probe'] });
  });
  after(async () => {
    await gw?.stop();
  });

  const connects = () => readEvents(gw.eventsPath).filter((e) => ctx(e).eventType === 'CONNECT').length;

  test('88 query parameters get 431 with a reason, and no $connect runs', async () => {
    const before = connects();
    const query = Array.from({ length: 88 }, (_, i) => `a${i}=1`).join('&');
    const res = await rawHttp(gw.port, upgradeHead(`/?${query}`));
    assert.equal(res.status, 431);
    assert.match(res.body, /88 query parameters/);
    const ok = await rawHttp(gw.port, upgradeHead(`/?${query.split('&').slice(0, 60).join('&')}`)).catch((e) => e);
    assert.equal(ok.status, 101, '60 parameters still connect');
    await waitFor(() => connects() === before + 1, { what: 'one $connect, for the accepted upgrade only' });
  });

  test('Upgrade: h2c, websocket gets our 400, not a page from libwebsockets, and no $connect', async () => {
    const before = connects();
    const res = await rawHttp(gw.port, upgradeHead('/', 'h2c, websocket'));
    assert.equal(res.status, 400);
    assert.match(res.body, /only upgrades to WebSocket/);
    assert.equal(connects(), before);
  });

  test('a malformed percent-escape or an escaped NUL in the path or query gets our 400, and no $connect', async () => {
    const before = connects();
    for (const [target, reason] of [['/?a=%zz', /malformed percent-escape "%zz"/], ['/?a=%', /malformed percent-escape "%"/],
      ['/?a=%00b', /escaped NUL byte/], ['/x%00', /escaped NUL byte/]]) {
      const res = await rawHttp(gw.port, upgradeHead(target));
      assert.equal(res.status, 400, target);
      assert.match(JSON.parse(res.body).message, reason);
    }
    const ok = await rawHttp(gw.port, upgradeHead('/?a=%41%2f%25')).catch((e) => e);
    assert.equal(ok.status, 101, 'well-formed escapes still connect');
    await waitFor(() => connects() === before + 1, { what: 'one $connect, for the accepted upgrade only' });
  });

  const closeCases = [
    { name: 'a reason that is not UTF-8', payload: Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64])]), code: 1007 },
    { name: 'code 5000', payload: Buffer.from([0x13, 0x88]), code: 1002 },
    { name: 'code 1005 (never sent on the wire)', payload: Buffer.from([0x03, 0xed]), code: 1002 },
    { name: 'code 999', payload: Buffer.from([0x03, 0xe7]), code: 1002 },
    { name: 'a 1-byte payload', payload: Buffer.from([0x03]), code: 1002 },
  ];
  for (const c of closeCases) {
    test(`a close frame with ${c.name} fails the connection with ${c.code}`, async () => {
      const raw = await RawWebSocket.open(gw.port);
      raw.write(maskedFrame(8, c.payload));
      const got = await raw.closeFrame();
      assert.equal(got.code, c.code);
      raw.destroy();
    });
  }

  test('a valid close frame is echoed, and $disconnect carries its code and reason', async () => {
    const raw = await RawWebSocket.open(gw.port);
    raw.write(maskedFrame(1, JSON.stringify({ action: 'whoami' })));
    await raw.until(() => raw.frames.some((f) => f.opcode === 1), 5000, 'the whoami answer');
    const id = raw.frames.find((f) => f.opcode === 1).payload.toString();
    raw.write(maskedFrame(8, Buffer.concat([Buffer.from([0x0f, 0xa0]), Buffer.from('bye κόσμε')])));  // 4000
    const got = await raw.closeFrame();
    assert.equal(got.code, 4000);
    const disc = await waitFor(() => readEvents(gw.eventsPath).find((e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === id),
      { what: '$disconnect' });
    assert.equal(ctx(disc).disconnectStatusCode, 4000);
    assert.equal(ctx(disc).disconnectReason, 'bye κόσμε');
    raw.destroy();
  });
});
