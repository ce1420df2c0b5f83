// The paths of the management API: /@connections/{id} and /@connections, the groups
// (/@groups/{group}, /@groups/{group}/connections/{id}) and /@broadcast, also under one stage prefix
// (/{stage}/@connections/...) as the AWS SDK sends them, percent-decoded first (%40connections, %3D).
#pragma once

#include <string>
#include <string_view>

namespace wsgw {

enum class ManagementTarget { Connection, ConnectionList, Group, GroupMember, Broadcast, Unknown };

struct ManagementPath {
    ManagementTarget target = ManagementTarget::Unknown;
    std::string stage;
    std::string connectionId;
    std::string group;
    std::string error;  // why an Unknown path is not one of ours
};

ManagementPath parseManagementPath(std::string_view rawPath);
std::string percentDecode(std::string_view in, bool *ok);

}  // namespace wsgw
