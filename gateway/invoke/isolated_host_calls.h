// Owns: the gateway's side of the host API calls an isolated handler's worker makes over its socket (a Call
// frame: post, delete, get, groups, send to a group, to all, to a user, log): each is made through the same
// checked calls as an in-process plugin's (host_api_checks), so whatever a plugin scribbles on its worker's
// socket (an empty group, say) goes no further than a plugin's own call would, and answered with a CallReply.
#pragma once

#include "host_api.h"

#include <string>
#include <string_view>

namespace wsgw {

// Makes the call in a Call frame's `payload`. False when the payload is malformed (the worker is dropped);
// otherwise `replyFrame` is the CallReply to send back, or empty for a call that has none (log).
bool answerHostCall(HostOperations *ops, std::string_view payload, std::string &replyFrame);

}  // namespace wsgw
