// What a Lambda function's result means to the gateway (docs/lambda.md), as AWS API Gateway maps a Lambda
// proxy integration's answer: {"statusCode", "body", "isBase64Encoded"} gives the status ($connect: a
// non-2xx refuses the upgrade) and the route response; a string is the body itself; null sends nothing;
// any other JSON value is sent as its JSON text. Also the Lambda error body's fields, for the log. Pure.
#pragma once

#include <string>
#include <string_view>

namespace wsgw {

struct LambdaResult {
    bool ok = true;          // false: the result is not JSON, or its statusCode/body has the wrong type
    std::string problem;     // why not ok, for the log
    int status = 200;
    bool hasBody = false;    // false: nothing is sent (null, or a proxy result without "body")
    std::string body;
    bool binary = false;     // "isBase64Encoded": true (body decoded)
};

// `payload` is the body the function POSTed to .../invocation/{id}/response.
LambdaResult mapLambdaResult(std::string_view payload);

// errorType and errorMessage of a body POSTed to .../invocation/{id}/error or /init/error
// ({"errorMessage", "errorType", "stackTrace"}); the raw text (cut) when it is not that shape.
struct LambdaError {
    std::string type, message;
};
LambdaError parseLambdaError(std::string_view payload, std::string_view typeHeader);

}  // namespace wsgw
