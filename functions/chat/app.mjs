// The AWS "simple WebSocket chat" as a Lambda function, run unmodified by wsgw's `lambda` handler
// (docs/lambda.md): $connect remembers the connection, $disconnect forgets it, sendmessage posts its
// `data` to every remembered connection through the management API's POST /@connections/{id}, and
// anything else is echoed back (route $default, two-way).
//
// On AWS the connection IDs live in a DynamoDB table; here they live in this process's memory, which is
// why routes.json runs this function with "concurrency": 1 (a process replaced after a crash starts with
// an empty list). CHAT_KEY, when set, is the key a client must give as ?key=... (else 403).
const connections = new Set();
const endpoint = process.env.MANAGEMENT_ENDPOINT ?? 'http://127.0.0.1:9001';

async function postToConnection(connectionId, data) {
  const res = await fetch(`${endpoint}/@connections/${encodeURIComponent(connectionId)}`, { method: 'POST', body: data });
  if (res.status === 410) connections.delete(connectionId);  // gone: forget it, as the AWS sample does
  else if (res.status !== 200) console.log(`post to ${connectionId} answered ${res.status}`);
}

export const handler = async (event) => {
  const { routeKey, connectionId, requestId } = event.requestContext;
  console.log(`${routeKey} from ${connectionId}`);
  switch (routeKey) {
    case '$connect': {
      const key = event.queryStringParameters?.key;
      if (process.env.CHAT_KEY && key !== process.env.CHAT_KEY) return { statusCode: 403, body: 'wrong or missing key' };
      connections.add(connectionId);
      return { statusCode: 200 };
    }
    case '$disconnect':
      connections.delete(connectionId);
      return { statusCode: 200 };
    case 'sendmessage': {
      const { data } = JSON.parse(event.body);
      const text = typeof data === 'string' ? data : JSON.stringify(data);
      await Promise.all([...connections].map((id) => postToConnection(id, text)));
      return { statusCode: 200, body: 'Data sent.' };
    }
    default:
      return { statusCode: 200, body: JSON.stringify({ echo: event.body, requestId }) };
  }
};
