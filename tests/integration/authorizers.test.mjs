// Built-in $connect authorizers through the real listener: API keys from x-api-key, ?apikey (Apigee) and
// ?subscription-key (Azure), from the configuration and a key file; JWTs (HS256, RS256 from a PEM file,
// ES256 from a JWKS file) from Authorization: Bearer or ?access_token. 401 without credentials, 403 with
// bad ones, nothing in the table then; the result is requestContext.authorizer of every event and the
// table's authorizer column; a key removed on reload and an expired token close the connection with 1008.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Gateway, ctx, eventsOf, makeTempDir, openExpectingRefusal, sqliteRows, waitFor, whoami } from './harness.mjs';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Signs a JWT the way any identity provider would; `key` is a secret (HS256) or a private KeyObject.
function signJwt(alg, key, claims, header = {}) {
  const head = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const body = b64url(JSON.stringify(claims));
  const data = `${head}.${body}`;
  let sig;
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(data).digest();
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(data), key);
  else sig = crypto.sign('sha256', Buffer.from(data), { key, dsaEncoding: 'ieee-p1363' });
  return `${data}.${b64url(sig)}`;
}

const now = () => Math.floor(Date.now() / 1000);
const principal = (key) => `key-${crypto.createHash('sha256').update(key).digest('hex').slice(0, 8)}`;

describe('apiKey authorizer', () => {
  let gw;
  let dir;
  const keyFile = () => path.join(dir, 'keys.txt');
  const routes = () => ({
    routeSelectionExpression: '$request.body.action',
    handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
    routes: {
      $connect: { handler: 'probe', authorizer: { type: 'apiKey', keys: ['k1', { id: 'alice', key: 'alice-secret' }], keyFile: 'keys.txt',
                                                    sources: ['header:x-api-key', 'query:apikey', 'query:subscription-key'] } },
      $disconnect: { handler: 'probe' },
      $default: { handler: 'probe', routeResponse: true },
    },
  });

  before(async () => {
    dir = makeTempDir('wsgw-auth-');
    fs.writeFileSync(keyFile(), '# team keys\nbob:bob-secret\n\ncarol:carol-secret\n');
    gw = await Gateway.start({ dir, routes: routes(), plugins: ['probe'] });
  });
  after(async () => {
    await gw?.stop();
  });

  test('no key is 401, a wrong key 403, each with a reason; neither reaches the handler or the table', async () => {
    const missing = await openExpectingRefusal(gw.url);
    assert.equal(missing.status, 401);
    assert.match(JSON.parse(missing.body).message, /no API key: send it in header x-api-key, query apikey or query subscription-key/);
    const wrong = await openExpectingRefusal(`${gw.url}/?apikey=nope`);
    assert.equal(wrong.status, 403);
    assert.match(JSON.parse(wrong.body).message, /the API key in query:apikey is not valid/);
    const wrongHeader = await openExpectingRefusal(gw.url, { headers: { 'x-api-key': 'nope' } });
    assert.equal(wrongHeader.status, 403);
    assert.equal(gw.events().filter((e) => ctx(e).eventType === 'CONNECT').length, 0, 'the $connect handler never ran');
    // With a $disconnect configured the row is committed before the authorizer and $connect run (so that
    // kill -9 cannot lose a $disconnect); a refusal deletes it in the table writer's next batch.
    await waitFor(async () => (await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections')).length === 0,
      { what: 'no row left behind by the refused upgrades' });
  });

  test('a configured key with an id: requestContext.authorizer and identity.apiKeyId on every event, and in the table', async () => {
    const c = await Client.open(gw.url, { headers: { 'x-api-key': 'alice-secret' } });
    const id = await whoami(c);
    for (const type of ['CONNECT', 'MESSAGE']) {
      const ev = eventsOf(gw.eventsPath, id, type)[0];
      assert.deepEqual(ev.requestContext.authorizer, { principalId: 'alice' }, type);
      assert.equal(ev.requestContext.identity.apiKeyId, 'alice', type);
    }
    // The row committed before the authorizer ran is written again with its context once the upgrade has
    // completed, in a later batch of the table's writer that the client does not wait for.
    const rows = await waitFor(async () => {
      const r = await sqliteRows(gw.dbPath, `SELECT authorizer FROM connections WHERE connection_id = '${id}'`);
      return r[0]?.authorizer && r;
    }, { what: `the authorizer context in the row of ${id}` });
    assert.deepEqual(JSON.parse(rows[0].authorizer), { principalId: 'alice' });
    await c.close();
  });

  test('Azure\'s subscription-key from the key file, and a key without an id named after its hash', async () => {
    const bob = await Client.open(`${gw.url}/?subscription-key=bob-secret`);
    const bobId = await whoami(bob);
    assert.deepEqual(eventsOf(gw.eventsPath, bobId, 'CONNECT')[0].requestContext.authorizer, { principalId: 'bob' });
    const anon = await Client.open(`${gw.url}/?apikey=k1`);
    const anonId = await whoami(anon);
    assert.deepEqual(eventsOf(gw.eventsPath, anonId, 'CONNECT')[0].requestContext.authorizer, { principalId: principal('k1') });
    await bob.close();
    await anon.close();
  });

  test('a key removed from the key file closes its connections with 1008 and runs their $disconnect; others stay', async () => {
    const carol = await Client.open(gw.url, { headers: { 'x-api-key': 'carol-secret' } });
    const carolId = await whoami(carol);
    const alice = await Client.open(gw.url, { headers: { 'x-api-key': 'alice-secret' } });
    fs.writeFileSync(keyFile(), '# carol left\nbob:bob-secret\n');
    const closed = await carol.waitClosed(5000);
    assert.equal(closed.code, 1008);
    await waitFor(() => eventsOf(gw.eventsPath, carolId, 'DISCONNECT').length === 1, { what: "carol's $disconnect" });
    assert.equal(eventsOf(gw.eventsPath, carolId, 'DISCONNECT')[0].requestContext.disconnectStatusCode, 1008);
    assert.equal(await alice.request('still-here'), 'still-here');
    assert.equal((await openExpectingRefusal(gw.url, { headers: { 'x-api-key': 'carol-secret' } })).status, 403);
    await alice.close();
  });
});

describe('jwt authorizer', () => {
  let gw;
  let dir;
  const secret = 'hs256-test-secret-0123456789abcdef';
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });

  before(async () => {
    dir = makeTempDir('wsgw-jwt-');
    fs.writeFileSync(path.join(dir, 'rsa.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    const jwk = ec.publicKey.export({ format: 'jwk' });
    fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...jwk, kid: 'ec-1', alg: 'ES256', use: 'sig' }] }));
    gw = await Gateway.start({
      dir,
      routes: {
        routeSelectionExpression: '$request.body.action',
        handlers: { probe: { config: { log: path.join(dir, 'events.jsonl') } } },
        routes: {
          $connect: { handler: 'probe', authorizer: { type: 'jwt', algorithms: ['HS256', 'RS256', 'ES256'], secret,
                                                      publicKeyFile: 'rsa.pem', jwksFile: 'jwks.json',
                                                      issuer: 'https://issuer.example', audience: ['wsgw-api'] } },
          $disconnect: { handler: 'probe' },
          $default: { handler: 'probe', routeResponse: true },
        },
      },
      plugins: ['probe'],
    });
  });
  after(async () => {
    await gw?.stop();
  });

  const claims = (extra = {}) => ({ sub: 'user-42', iss: 'https://issuer.example', aud: 'wsgw-api', exp: now() + 600, scope: 'chat:read chat:write', ...extra });

  test('HS256 in Authorization: Bearer: the claims become requestContext.authorizer', async () => {
    const c = await Client.open(gw.url, { headers: { Authorization: `Bearer ${signJwt('HS256', secret, claims())}` } });
    const id = await whoami(c);
    const auth = eventsOf(gw.eventsPath, id, 'MESSAGE')[0].requestContext.authorizer;
    assert.equal(auth.principalId, 'user-42');
    assert.equal(auth.jwt.claims.iss, 'https://issuer.example');
    assert.deepEqual(auth.jwt.scopes, ['chat:read', 'chat:write']);
    await c.close();
  });

  test('RS256 from a PEM file and ES256 from a JWKS file, in ?access_token', async () => {
    for (const token of [signJwt('RS256', rsa.privateKey, claims({ sub: 'rs-user' })),
      signJwt('ES256', ec.privateKey, claims({ sub: 'es-user' }), { kid: 'ec-1' })]) {
      const c = await Client.open(`${gw.url}/?access_token=${token}`);
      const id = await whoami(c);
      assert.match(eventsOf(gw.eventsPath, id, 'CONNECT')[0].requestContext.authorizer.principalId, /^(rs|es)-user$/);
      await c.close();
    }
  });

  test('no token 401; a bad signature, an expired token, a wrong audience or issuer, alg none 403', async () => {
    const missing = await openExpectingRefusal(gw.url);
    assert.equal(missing.status, 401);
    const good = signJwt('HS256', secret, claims());
    const tampered = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const none = `${b64url(JSON.stringify({ alg: 'none' }))}.${b64url(JSON.stringify(claims()))}.`;
    const cases = [
      [tampered, /signature/i],
      [signJwt('HS256', secret, claims({ exp: now() - 3600 })), /expired/i],
      [signJwt('HS256', secret, claims({ aud: 'someone-else' })), /aud/i],
      [signJwt('HS256', secret, claims({ iss: 'https://evil.example' })), /iss/i],
      [signJwt('HS256', 'another-secret', claims()), /signature/i],
      [none, /none|alg/i],
    ];
    for (const [token, why] of cases) {
      const r = await openExpectingRefusal(gw.url, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(r.status, 403, token);
      assert.match(JSON.parse(r.body).message, why);
    }
    // The rows of the earlier tests' connections go in the table writer's next batch, after their
    // $disconnect; the refused upgrades must leave none of their own behind once it has run.
    await waitFor(async () => (await sqliteRows(gw.dbPath, 'SELECT connection_id FROM connections')).length === 0,
      { what: 'an empty connection table' });
  });

  test('when the token expires (exp + clockSkewSeconds), the connection closes with 1008 and its $disconnect runs', async () => {
    // 58 s past exp, within the default 60 s skew: admitted, and open until exp + 60, 2 s from now.
    const c = await Client.open(gw.url, { headers: { Authorization: `Bearer ${signJwt('HS256', secret, claims({ exp: now() - 58 }))}` } });
    const id = await whoami(c);
    const closed = await c.waitClosed(6000);
    assert.equal(closed.code, 1008);
    await waitFor(() => eventsOf(gw.eventsPath, id, 'DISCONNECT').length === 1, { what: 'the $disconnect' });
  });
});

describe('a $connect with an authorizer and no handler', () => {
  test('admits with a good key and refuses without one; messages reach their routes', async () => {
    const gw = await Gateway.start({
      routes: {
        routeSelectionExpression: '$request.body.action',
        routes: { $connect: { authorizer: { type: 'apiKey', keys: ['only-key'] } }, $default: { handler: 'echo', routeResponse: true } },
      },
      plugins: ['echo'],
    });
    try {
      assert.equal((await openExpectingRefusal(gw.url)).status, 401);
      const c = await Client.open(`${gw.url}/?apikey=only-key`);
      assert.equal(await c.request('through'), 'through');
      await c.close();
    } finally {
      await gw.stop();
    }
  });
});
