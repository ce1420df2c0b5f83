// Callbacks from lambda functions, unmodified (docs/lambda.md "Callbacks"): the AWS chat
// sample (functions/chat/app.mjs, as it is in the repository) builds its ApiGatewayManagementApiClient from
// `https://${domainName}/${stage}` of its event and posts with the real AWS SDK; a Python function does the
// same with boto3's apigatewaymanagementapi client (Debian's python3-boto3). Both reach the gateway's
// management API over TLS (a certificate the gateway made, which the functions trust) and pass its SigV4
// check with the credentials in their environment; unsigned or wrongly signed requests there are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';

import { Client, REPO_ROOT, openExpectingRefusal } from './harness.mjs';
import { startGateway } from './started-gateways.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
// The chat sample's own file, in a directory whose node_modules is the tests' (where the SDK is installed),
// as `npm install` in functions/chat would provide it.
function chatFunctionDir(dir) {
  const fnDir = path.join(dir, 'chat');
  fs.mkdirSync(fnDir, { recursive: true });
  fs.copyFileSync(path.join(REPO_ROOT, 'functions', 'chat', 'app.mjs'), path.join(fnDir, 'app.mjs'));
  fs.symlinkSync(path.join(here, 'node_modules'), path.join(fnDir, 'node_modules'));
  return fnDir;
}

const callbackEndpoint = (gw) => gw.lines.find((l) => l.msg === 'listening').functionCallbacks;

// An HTTPS request to the functions' endpoint, trusting the CA the gateway wrote beside its database.
function httpsRequest(url, { method = 'GET', headers = {}, body, ca }) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('the AWS chat sample posts to every stored connection with the real SDK through https://{domainName}/{stage}', async () => {
  const gw = await startGateway({
    routes: (dir) => ({
      routeSelectionExpression: '$request.body.action',
      stage: 'prod',
      handlers: {
        chat: { lambda: { runtime: 'nodejs', handler: 'app.handler', directory: chatFunctionDir(dir), concurrency: 1, environment: { CHAT_KEY: 'k1' } } },
      },
      routes: {
        $connect: { handler: 'chat' },
        $disconnect: { handler: 'chat' },
        sendmessage: { handler: 'chat', timeoutMs: 20000 },
        $default: { handler: 'chat', routeResponse: true },
      },
    }),
  });
  const endpoint = callbackEndpoint(gw);
  assert.match(endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);

  assert.equal((await openExpectingRefusal(`${gw.url}/?key=wrong`)).status, 403);
  const alice = await Client.open(`${gw.url}/?key=k1`);
  const bob = await Client.open(`${gw.url}/?key=k1`);
  alice.send(JSON.stringify({ action: 'sendmessage', data: 'hello all' }));
  assert.equal(await alice.nextText(10000), 'hello all');
  assert.equal(await bob.nextText(10000), 'hello all');
  bob.send(JSON.stringify({ action: 'sendmessage', data: { n: 1 } }));
  assert.equal(await alice.nextText(10000), '{"n":1}');
  assert.equal(await bob.nextText(10000), '{"n":1}');
  assert.ok(!gw.lines.some((l) => l.function === 'chat' && /failed/.test(l.msg ?? '')), 'no post failed');

  // The event the function saw: domainName is the endpoint, stage is routes.json's.
  const echoed = JSON.parse(await alice.request('plain text'));
  assert.equal(echoed.echo, 'plain text');

  // $disconnect reaches the function; a later post to a gone connection is not made.
  await bob.close();
  await gw.waitForLog((l) => l.function === 'chat' && typeof l.msg === 'string' && l.msg.startsWith('$disconnect from'), 5000, '$disconnect');
  alice.send(JSON.stringify({ action: 'sendmessage', data: 'after bob' }));
  assert.equal(await alice.nextText(10000), 'after bob');
  assert.ok(!gw.lines.some((l) => l.function === 'chat' && /failed/.test(l.msg ?? '')), 'no post failed');
  await alice.close();
});

test("the functions' endpoint: TLS with the gateway's CA, the /{stage} prefix, SigV4 with the functions' credentials only", async () => {
  const gw = await startGateway({
    routes: (dir) => {
      const fnDir = path.join(dir, 'env');
      fs.mkdirSync(fnDir);
      fs.writeFileSync(path.join(fnDir, 'env.mjs'), `export const handler = async (event) => JSON.stringify({
  ctx: event.requestContext, env: Object.fromEntries(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN',
    'NODE_EXTRA_CA_CERTS', 'AWS_CA_BUNDLE', 'SSL_CERT_FILE', 'AWS_REGION'].map((n) => [n, process.env[n]])) });
`);
      return {
        routeSelectionExpression: '$request.body.action',
        handlers: { env: { lambda: { runtime: 'nodejs', handler: 'env.handler', directory: fnDir } } },
        routes: { $default: { handler: 'env', routeResponse: true } },
      };
    },
  });
  const c = await Client.open(gw.url);
  const { ctx, env } = JSON.parse(await c.request('who'));
  assert.equal(ctx.stage, 'local', 'the default stage');
  assert.equal(`https://${ctx.domainName}`, callbackEndpoint(gw));
  const ca = fs.readFileSync(env.NODE_EXTRA_CA_CERTS);
  assert.equal(path.dirname(env.NODE_EXTRA_CA_CERTS), path.dirname(gw.dbPath), 'the CA is in the data directory');
  const bundle = fs.readFileSync(env.AWS_CA_BUNDLE, 'utf8');
  assert.ok(bundle.startsWith(ca.toString()), 'the bundle starts with the CA');
  assert.equal(env.SSL_CERT_FILE, env.AWS_CA_BUNDLE);

  // Unsigned: refused (the endpoint always wants credentials), over a TLS connection that verified.
  const unsigned = await httpsRequest(`https://${ctx.domainName}/local/@connections/${ctx.connectionId}`, { ca });
  assert.equal(unsigned.status, 403);
  assert.equal(unsigned.headers['x-amzn-errortype'], 'ForbiddenException');

  // The functions' credentials, signed by the SDK from outside a function: accepted; other ones: 403.
  const sdk = (credentials) => new ApiGatewayManagementApiClient({
    endpoint: `https://${ctx.domainName}/${ctx.stage}`, region: env.AWS_REGION, maxAttempts: 1, credentials,
    requestHandler: { httpsAgent: new https.Agent({ ca }) },
  });
  await sdk({ accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN })
    .send(new PostToConnectionCommand({ ConnectionId: ctx.connectionId, Data: 'signed by the function credentials' }));
  assert.equal(await c.nextText(), 'signed by the function credentials');
  await assert.rejects(sdk({ accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: 'not-the-secret' })
    .send(new PostToConnectionCommand({ ConnectionId: ctx.connectionId, Data: 'x' })),
  (err) => err.$metadata?.httpStatusCode === 403 && err.name === 'ForbiddenException');

  // Without the CA the certificate does not verify: it is the gateway's own, not a public one.
  await assert.rejects(httpsRequest(`https://${ctx.domainName}/local/@connections/${ctx.connectionId}`, {}),
    (err) => /self[- ]signed|unable to (get|verify)|certificate/i.test(err.message));
  await c.close();
});

const hasBoto3 = (() => {
  try {
    execFileSync('python3', ['-c', 'import boto3'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('a Python function posts with boto3 (apigatewaymanagementapi, endpoint_url from the event); a gone connection is GoneException',
  { skip: hasBoto3 ? false : 'python3 cannot import boto3: apt-get install python3-boto3 (tools/install-deps does)' }, async () => {
    const gw = await startGateway({
      routes: (dir) => {
        const fnDir = path.join(dir, 'relay');
        fs.mkdirSync(fnDir);
        fs.writeFileSync(path.join(fnDir, 'relay.py'), [
          'import json',
          'import boto3',
          '',
          'def handler(event, context):',
          '    ctx = event["requestContext"]',
          '    body = json.loads(event["body"])',
          '    if body["action"] == "whoami":',
          '        return ctx["connectionId"]',
          '    api = boto3.client("apigatewaymanagementapi", endpoint_url="https://" + ctx["domainName"] + "/" + ctx["stage"])',
          '    try:',
          '        api.post_to_connection(ConnectionId=body["to"], Data=body["text"].encode("utf-8"))',
          '    except api.exceptions.GoneException:',
          '        return {"statusCode": 200, "body": "gone"}',
          '    return {"statusCode": 200, "body": "posted"}',
          '',
        ].join('\n'));
        return {
          routeSelectionExpression: '$request.body.action',
          stage: 'dev',
          handlers: { relay: { lambda: { runtime: 'python', handler: 'relay.handler', directory: fnDir, concurrency: 1 } } },
          routes: {
            relay: { handler: 'relay', routeResponse: true, timeoutMs: 20000 },
            whoami: { handler: 'relay', routeResponse: true, timeoutMs: 20000 },
          },
        };
      },
    });
    const sender = await Client.open(gw.url);
    const receiver = await Client.open(gw.url);
    const receiverId = await receiver.request(JSON.stringify({ action: 'whoami' }), 20000);
    const answer = await sender.request(JSON.stringify({ action: 'relay', to: receiverId, text: 'from boto3 ✓' }), 20000);
    assert.equal(answer, 'posted');
    assert.equal(await receiver.nextText(10000), 'from boto3 ✓');
    // A well-formed ID that is not connected: boto3 raises GoneException (410).
    const gone = await sender.request(JSON.stringify({ action: 'relay', to: 'AAAAAAAAAAAAAAAAAAAAAA', text: 'x' }), 20000);
    assert.equal(gone, 'gone');
    await sender.close();
    await receiver.close();
  });

// AWS's own runtime interface client from npm (`command`), strict about the Runtime API (Content-Length on
// `next`, the Lambda-Runtime-* headers). It builds native code (curl, aws-lambda-cpp) with autoconf,
// automake, libtool, cmake and g++ for minutes, so it is not among the tests' pinned packages:
// tools/install-aws-lambda-ric builds it once per machine and links it in here (tools/test runs it).
const ricInstalled = fs.existsSync(path.join(here, 'node_modules', 'aws-lambda-ric', 'package.json'));
const ricSkipReason = process.env.WSGW_AWS_LAMBDA_RIC_PENDING
  ? 'aws-lambda-ric is still being built by tools/test (the first time on this machine); its later stages run this test'
  : 'aws-lambda-ric is not installed: run tools/install-aws-lambda-ric (builds native code; needs autoconf automake libtool cmake g++)';

test('the AWS chat sample under aws-lambda-ric (command: npx aws-lambda-ric app.handler): $connect 403, SDK posts, echo',
  { skip: ricInstalled ? false : ricSkipReason },
  async () => {
    const gw = await startGateway({
      routes: (dir) => ({
        routeSelectionExpression: '$request.body.action',
        handlers: {
          chat: { lambda: { command: ['npx', 'aws-lambda-ric', 'app.handler'], directory: chatFunctionDir(dir), concurrency: 1,
            environment: { CHAT_KEY: 'k2' } } },
        },
        routes: {
          $connect: { handler: 'chat' },
          $disconnect: { handler: 'chat' },
          sendmessage: { handler: 'chat', timeoutMs: 20000 },
          $default: { handler: 'chat', routeResponse: true, timeoutMs: 20000 },
        },
      }),
      startTimeoutMs: 40000,
    });
    assert.equal((await openExpectingRefusal(`${gw.url}/?key=nope`)).status, 403);
    const a = await Client.open(`${gw.url}/?key=k2`);
    const b = await Client.open(`${gw.url}/?key=k2`);
    a.send(JSON.stringify({ action: 'sendmessage', data: 'via aws-lambda-ric' }));
    assert.equal(await a.nextText(15000), 'via aws-lambda-ric');
    assert.equal(await b.nextText(15000), 'via aws-lambda-ric');
    const echoed = JSON.parse(await a.request('x', 15000));
    assert.equal(echoed.echo, 'x');
    await a.close();
    await b.close();
  });
