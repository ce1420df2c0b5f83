// The AWS "simple WebSocket chat" as a Lambda function, run unmodified by wsgw's `lambda` handler
// (docs/lambda.md): $connect remembers the connection, $disconnect forgets it, sendmessage posts its
// `data` to every remembered connection with the AWS SDK's ApiGatewayManagementApiClient, its endpoint
// made from the event as on AWS (`https://{domainName}/{stage}`), and anything else is echoed back
// (route $default, two-way). wsgw points domainName at its management API's loopback TLS endpoint, which
// this process trusts and whose SigV4 check accepts the credentials in its environment.
//
// On AWS the connection IDs live in a DynamoDB table; here they live in this process's memory, which is
// why routes.json runs this function with "concurrency": 1 (a process replaced after a crash or an edit
// starts with an empty list). CHAT_KEY, when set, is the key a client must give as ?key=... (else 403).
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';

const connections = new Set();

export const handler = async (event) => {
  const { routeKey, connectionId, requestId, domainName, stage } = event.requestContext;
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
      const api = new ApiGatewayManagementApiClient({ endpoint: `https://${domainName}/${stage}` });
      await Promise.all([...connections].map(async (id) => {
        try {
          await api.send(new PostToConnectionCommand({ ConnectionId: id, Data: text }));
        } catch (err) {
          if (err.$metadata?.httpStatusCode === 410) connections.delete(id);  // gone: forget it, as the AWS sample does
          else console.log(`post to ${id} failed: ${err.name}: ${err.message}`);
        }
      }));
      return { statusCode: 200, body: 'Data sent.' };
    }
    default:
      return { statusCode: 200, body: JSON.stringify({ echo: event.body, requestId }) };
  }
};
