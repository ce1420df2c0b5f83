// Owns: who may use the management API. Reading the credentials file (loadManagementCredentials, declared in
// management_api.h), whether a listen address is loopback (isLoopbackHost: elsewhere credentials are
// required), and checking a request's Authorization (a bearer token of the file, or an AWS SigV4 signature
// by one of its keys), with the reason a refused request is told.
#pragma once

#include "management_api.h"

#include "http_request.h"

#include <string>

namespace wsgw {

// True when the request may proceed: no credentials are configured, or its bearer token or SigV4 signature
// is good. Otherwise false with `reason` set. Before the body has come (bodyKnown false), a SigV4
// signature, which covers the body, passes here and is checked with the whole request.
bool authorizeManagementRequest(const ManagementCredentials &credentials, const HttpRequest &req, std::string &reason,
                                bool bodyKnown = true);

}  // namespace wsgw
