// The paths of the management API: /@connections/{id} and /@connections, the groups
// (/@groups/{group}, /@groups/{group}/connections/{id}), /@broadcast and /@users/{user}, also under one stage prefix
// (/{stage}/@connections/...) as the AWS SDK sends them, percent-decoded first (%40connections, %3D).
// A segment whose percent-escapes are malformed (%zz, a lone %) or decode to a NUL byte is bad input, not
// an unknown path: the API answers it 400 BadRequestException (docs/management-api.md), never 404.
#pragma once

#include "text.h"

#include <string>
#include <string_view>

namespace wsgw {

enum class ManagementTarget { Connection, ConnectionList, Group, GroupMember, Broadcast, User, Unknown };

struct ManagementPath {
    ManagementTarget target = ManagementTarget::Unknown;
    std::string stage;
    std::string connectionId;
    std::string group;
    std::string user;          // /@users/{user}: an Azure Web PubSub user ID (docs/webpubsub.md)
    std::string error;         // why an Unknown path is not one of ours
    bool badEncoding = false;  // Unknown because a segment's percent-encoding is malformed (error says which)
};

// Segments are percent-decoded with text.h's strict percentDecode.
ManagementPath parseManagementPath(std::string_view rawPath);

}  // namespace wsgw
