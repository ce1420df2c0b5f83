// Owns: the operations endpoints beside @connections: /healthz and /readyz (for probes, no credentials),
// /console (the test console's page, embedded at build time; no credentials, it sends those it is given),
// and behind the credentials /metrics, /@routes and /@info. Each answers from the OperationsHooks the app
// sets (management_api.h) and runs on the network thread.
#pragma once

#include "management_api.h"
#include "management_response.h"

#include "http_request.h"

#include <string>

namespace wsgw {

bool isOperationsPath(const std::string &path);

// The answer to a request for an operations endpoint; `handled` false (and the answer unused) for any other.
ManagementResponse operationsRequest(const HttpRequest &req, const ManagementCredentials &credentials, const OperationsHooks &ops,
                                     bool &handled);

}  // namespace wsgw
