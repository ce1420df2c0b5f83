// The real AWS SDK v3 ApiGatewayManagementApi client, pointed at the gateway with a custom endpoint and
// SigV4 credentials from --management-credentials, does PostToConnection, GetConnection and
// DeleteConnection unchanged; a wrong secret, a stale date and a tampered body are refused with 403. The
// AWS CLI v2 does the same three calls. The
// example in docs/management-api.md runs as written, with its credentials file, against a gateway.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ApiGatewayManagementApiClient, PostToConnectionCommand, GetConnectionCommand, DeleteConnectionCommand, GoneException,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { Gateway, Client, probeRoutes, whoami, waitForEvent, ctx, makeTempDir, REPO_ROOT } from './harness.mjs';

const KEY = { accessKeyId: 'AKIDWSGWTEST', secretAccessKey: 'wsgw-test-secret/K7MDENG+bPxRfiCYEXAMPLEKEY' };
let gw;

const sdk = (secretAccessKey = KEY.secretAccessKey, extra = {}) => new ApiGatewayManagementApiClient({
  endpoint: `${gw.managementUrl}/prod`, region: 'us-east-1', maxAttempts: 1,
  credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey }, ...extra,
});

before(async () => {
  const dir = makeTempDir('wsgw-sdk-');
  const creds = path.join(dir, 'credentials.json');
  fs.writeFileSync(creds, JSON.stringify({ sigv4: [KEY] }));
  gw = await Gateway.start({ dir, routes: probeRoutes({ routes: ['whoami'] }), plugins: ['probe'],
    extraArgs: ['--management-credentials', creds] });
});

after(async () => {
  await gw?.stop();
});

test('PostToConnection, GetConnection and DeleteConnection through the unchanged AWS SDK', async () => {
  const c = await Client.open(gw.url, { headers: { 'User-Agent': 'sdk-test' } });
  const id = await whoami(c);
  const client = sdk();
  await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'from the AWS SDK' }));
  assert.equal(await c.nextText(), 'from the AWS SDK');
  const info = await client.send(new GetConnectionCommand({ ConnectionId: id }));
  assert.equal(info.Identity.SourceIp, '127.0.0.1');
  assert.equal(info.Identity.UserAgent, 'sdk-test');
  assert.ok(info.ConnectedAt instanceof Date && !Number.isNaN(info.ConnectedAt.getTime()));
  await client.send(new DeleteConnectionCommand({ ConnectionId: id }));
  await c.waitClosed(3000);
  await waitForEvent(gw.eventsPath, (e) => ctx(e).eventType === 'DISCONNECT' && ctx(e).connectionId === id,
    { what: 'the $disconnect after DeleteConnection' });
  await assert.rejects(client.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'x' })),
    (err) => err instanceof GoneException && err.$metadata.httpStatusCode === 410);
});

test('a wrong secret, a stale date and a tampered body are refused with 403 ForbiddenException', async () => {
  const c = await Client.open(gw.url);
  const id = await whoami(c);
  const wrong = sdk('not-the-secret');
  await assert.rejects(wrong.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'x' })),
    (err) => err.$metadata?.httpStatusCode === 403 && err.name === 'ForbiddenException' && /signature does not match/.test(err.message));
  // A clock 20 minutes behind: the SDK signs with a stale X-Amz-Date.
  const stale = sdk(KEY.secretAccessKey, { systemClockOffset: -20 * 60 * 1000 });
  await assert.rejects(stale.send(new GetConnectionCommand({ ConnectionId: id })),
    (err) => err.$metadata?.httpStatusCode === 403 && /clock skew/.test(err.message));
  // A body changed after signing: a middleware at the end of the chain swaps it.
  const tampered = sdk();
  tampered.middlewareStack.add((next) => async (args) => {
    args.request.body = 'tampered';
    args.request.headers['content-length'] = String('tampered'.length);
    return next(args);
  }, { step: 'finalizeRequest', priority: 'low', name: 'tamper' });
  await assert.rejects(tampered.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'original' })),
    (err) => err.$metadata?.httpStatusCode === 403 && /does not match the body/.test(err.message));
  c.send('{"action":"whoami"}');
  assert.equal(await c.nextText(), id, 'no refused request reached the client');
  await c.close(1000);
});

// The AWS CLI v2 (Debian's awscli, installed by tools/install-deps), run as a user runs it: credentials and
// region from the environment, --endpoint-url naming the management listener and the stage.
const AWS_CLI = '/usr/bin/aws';
async function awsCli(args, secretAccessKey = KEY.secretAccessKey) {
  try {
    const { stdout } = await promisify(execFile)(AWS_CLI, ['apigatewaymanagementapi', ...args,
      '--endpoint-url', `${gw.managementUrl}/prod`, '--output', 'json'], {
      timeout: 30000,
      env: { PATH: process.env.PATH, HOME: makeTempDir('wsgw-awscli-home-'), AWS_ACCESS_KEY_ID: KEY.accessKeyId,
        AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1', AWS_PAGER: '' },
    });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    if (err.code === 'ENOENT') throw new Error(`${AWS_CLI} is missing: tools/install-deps installs Debian's awscli`);
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

test('the AWS CLI: post-to-connection, get-connection, delete-connection; a gone connection and a wrong secret', async () => {
  const c = await Client.open(gw.url, { headers: { 'User-Agent': 'cli-test' } });
  const id = await whoami(c);
  // The CLI v2 reads a blob argument as base64 unless told otherwise, as against AWS.
  const post = await awsCli(['post-to-connection', '--connection-id', id, '--data', 'from the AWS CLI',
    '--cli-binary-format', 'raw-in-base64-out']);
  assert.equal(post.code, 0, post.stderr);
  assert.equal(await c.nextText(), 'from the AWS CLI');
  const got = await awsCli(['get-connection', '--connection-id', id]);
  assert.equal(got.code, 0, got.stderr);
  const info = JSON.parse(got.stdout);
  assert.equal(info.Identity.SourceIp, '127.0.0.1');
  assert.equal(info.Identity.UserAgent, 'cli-test');
  assert.ok(!Number.isNaN(Date.parse(info.ConnectedAt)) && !Number.isNaN(Date.parse(info.LastActiveAt)), got.stdout);
  const wrong = await awsCli(['get-connection', '--connection-id', id], 'not-the-secret');
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /ForbiddenException/);
  const del = await awsCli(['delete-connection', '--connection-id', id]);
  assert.equal(del.code, 0, del.stderr);
  await c.waitClosed(3000);
  const gone = await awsCli(['get-connection', '--connection-id', id]);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /GoneException/);
});

// The fenced block of `lang` that follows `marker` in a doc.
function docBlock(doc, marker, lang) {
  const text = fs.readFileSync(path.join(REPO_ROOT, doc), 'utf8');
  const at = text.indexOf(marker);
  const start = text.indexOf('```' + lang + '\n', at);
  assert.ok(at >= 0 && start >= 0, `${doc} has no ${lang} block after "${marker}"`);
  return text.slice(start + lang.length + 4, text.indexOf('\n```', start) + 1);
}

test('docs/management-api.md: the AWS SDK example runs as written against its credentials file', async () => {
  const dir = makeTempDir('wsgw-sdk-doc-');
  const creds = path.join(dir, 'credentials.json');
  fs.writeFileSync(creds, docBlock('docs/management-api.md', '## From the AWS SDK', 'json'));
  const docGw = await Gateway.start({ dir, routes: probeRoutes({ routes: ['whoami'] }), plugins: ['probe'],
    extraArgs: ['--management-credentials', creds] });
  try {
    const example = docBlock('docs/management-api.md', '## From the AWS SDK', 'js');
    const endpoint = "'http://127.0.0.1:9001/prod'";
    assert.ok(example.includes(endpoint), 'the example names the default management listener');
    // The one change: the management listener's port this gateway got. Run beside the tests' node_modules,
    // which hold the SDK.
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), `.notify-${process.pid}.mjs`);
    fs.writeFileSync(script, example.replace(endpoint, `'${docGw.managementUrl}/prod'`));
    try {
      const c = await Client.open(docGw.url);
      const id = await whoami(c);
      const run = () => promisify(execFile)(process.execPath, [script, id], { timeout: 30000 });
      const { stdout } = await run();
      assert.equal(await c.nextText(), 'hello from the AWS SDK');
      assert.match(stdout, /^connected at \d{4}-\d\d-\d\dT[\d:.]+Z from 127\.0\.0\.1\n$/);
      await c.waitClosed(3000);
      assert.equal((await run()).stdout, 'that connection is gone\n');
    } finally {
      fs.rmSync(script, { force: true });
    }
  } finally {
    await docGw.stop();
  }
});
