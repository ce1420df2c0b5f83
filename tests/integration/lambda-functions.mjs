// Lambda functions for the lambda test files: written into a gateway's directory, and the route table that
// sends every message to one of them. Imported by lambda.test.mjs and lambda-bounds.test.mjs.
import fs from 'node:fs';
import path from 'node:path';

// Writes `files` ({name: text}) as the function `name` under dir/fns; returns its directory as routes.json
// names it (relative to the gateway's directory).
export function writeFunction(dir, name, files) {
  const fnDir = path.join(dir, 'fns', name);
  fs.mkdirSync(fnDir, { recursive: true });
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(fnDir, file), text);
  return `fns/${name}`;
}

// A route table whose $default is the Node.js function `name` (index.mjs = source, one process), answering
// the caller, with the route's timeoutMs.
export function oneNodeFunction(name, source, timeoutMs) {
  return (dir) => ({
    routeSelectionExpression: '$request.body.action',
    handlers: { [name]: { lambda: { runtime: 'nodejs', handler: 'index.handler', directory: writeFunction(dir, name, { 'index.mjs': source }), concurrency: 1 } } },
    routes: { $default: { handler: name, routeResponse: true, timeoutMs } },
  });
}
