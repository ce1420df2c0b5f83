// Owns: what a lambda function's process is started with (docs/lambda.md): its argv (wsgw's runtime client
// for "runtime", or the route's `command`) and Lambda's environment rather than the gateway's (the function's
// name, memory, region, log stream, Runtime API address, credentials, callback trust, the route's own
// variables), and the gateway-wide settings that go into it: where wsgw's runtime clients are, the
// credentials every function gets, the certificates a function trusts for callbacks and the endpoint its
// events name for them.
#pragma once

#include "config.h"

#include <string>
#include <vector>

namespace wsgw {

// Where wsgw's runtime clients are (runtimes/nodejs/bootstrap.mjs, runtimes/python/bootstrap.py): set once
// at start-up from --runtimes or the default beside the binary.
void setLambdaRuntimesDir(std::string dir);
const std::string &lambdaRuntimesDir();

// The AWS credentials in every function's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN): made once per gateway process from the CSPRNG, so an SDK that insists on credentials
// finds some; the management API may accept them for SigV4 (docs/lambda.md, "Callbacks").
struct LambdaCredentials {
    std::string accessKeyId, secretAccessKey, sessionToken;
};
const LambdaCredentials &lambdaCredentials();

// Callbacks (docs/lambda.md): what function processes trust and where their events say the management API is.
// caFile (NODE_EXTRA_CA_CERTS) holds the certificate(s) of the management API's loopback TLS endpoint;
// bundleFile (AWS_CA_BUNDLE, SSL_CERT_FILE, which replace a client's trust store) holds them plus the
// system's CAs, so a function's other HTTPS calls still verify. Set before functions start.
struct LambdaCallbackTrust {
    std::string caFile, bundleFile;
};
void setLambdaCallbackTrust(LambdaCallbackTrust trust);
// The loopback TLS endpoint's "host:port": requestContext.domainName of every lambda invocation, so
// https://{domainName}/{stage} is the endpoint of an unmodified ApiGatewayManagementApi client. Set once it
// listens; until then events carry the connection's Host.
void setLambdaCallbackEndpoint(std::string hostPort);
std::string lambdaCallbackEndpoint();

// The gateway's AWS_REGION (or AWS_DEFAULT_REGION), us-east-1 when neither is set.
std::string lambdaRegion();

// The program and arguments of a function's process: `command`, or wsgw's client for `runtime`.
std::vector<std::string> lambdaProcessArgv(const LambdaSpec &spec);
// Its environment ("NAME=value" each), with AWS_LAMBDA_RUNTIME_API on 127.0.0.1:runtimeApiPort.
std::vector<std::string> lambdaProcessEnvironment(const std::string &function, const LambdaSpec &spec, int runtimeApiPort);

}  // namespace wsgw
