// `wsgw import serverless.yml` (docs/lambda.md): the routes.json of a Serverless Framework project's WebSocket
// API. provider.websocketsApiRouteSelectionExpression is the route selection expression; every `websocket`
// event of a function is a route (its `route` key; `routeResponseSelectionExpression` makes it two-way);
// every function with such an event is a `lambda` handler named after it, with its `handler`, the runtime
// (the function's, else the provider's, else nodejs) mapped to "nodejs" or "python", `directory` "." (the
// routes.json goes beside serverless.yml), provider and function `environment` (the function's win),
// `memorySize` as memoryMb and `timeout` as the routes' timeoutMs (at most API Gateway's 29 s).
// provider.stage is "stage". Variables ${self:...}, ${env:NAME}, ${opt:stage}, ${sls:stage} (with a
// ", default") are resolved; any other is refused. Pure: text in, text out.
#pragma once

#include <map>
#include <string>
#include <variant>
#include <vector>

namespace wsgw {

struct ServerlessImport {
    std::string routesJson;             // pretty-printed, ending in a newline
    std::vector<std::string> warnings;  // what was left out and why (functions without websocket events, ...)
};

// `fileName` names the file in messages ("serverless.yml:12:5: ..."); `environment` resolves ${env:NAME}.
std::variant<ServerlessImport, std::string> importServerlessYaml(const std::string &yamlText, const std::string &fileName,
                                                                 const std::map<std::string, std::string> &environment = {});

}  // namespace wsgw
