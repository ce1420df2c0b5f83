// What an Azure Web PubSub client may do (docs/webpubsub.md): its roles from the access token
// ("webpubsub.joinLeaveGroup", "webpubsub.sendToGroup", each optionally narrowed to one group with
// ".<group>") and what the server granted or revoked later through the REST API. Owns the role syntax and
// the checks; a client with no role may only send events. Pure value type, one per connection.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

enum class WpsPermission { JoinLeaveGroup, SendToGroup };

// "joinLeaveGroup" / "sendToGroup" as the REST API names them (case-insensitive, as Azure compares them).
std::optional<WpsPermission> wpsPermissionOf(std::string_view name);

class WpsPermissions {
public:
    // Roles as the token's "role" claim lists them. Unknown roles are kept for the event's authorizer
    // context but grant nothing (Azure ignores them too); returns them so the caller can log them.
    std::vector<std::string> addRoles(const std::vector<std::string> &roles);

    bool allows(WpsPermission p, std::string_view group) const;
    // REST grant/revoke/check: `group` empty = every group. Revoking the every-group permission also drops
    // the per-group ones (Azure: revoke without a target removes the permission entirely).
    void grant(WpsPermission p, std::string_view group);
    void revoke(WpsPermission p, std::string_view group);
    // check: with a group, whether the client may act on that group; without, whether it holds the
    // every-group permission.
    bool check(WpsPermission p, std::string_view group) const;

    // The roles the permissions amount to now, in a stable order (for requestContext.authorizer).
    std::vector<std::string> roles() const;

private:
    struct Grant {
        bool everyGroup = false;
        std::set<std::string, std::less<>> groups;
    };
    Grant &of(WpsPermission p) { return p == WpsPermission::JoinLeaveGroup ? joinLeave_ : send_; }
    const Grant &of(WpsPermission p) const { return p == WpsPermission::JoinLeaveGroup ? joinLeave_ : send_; }
    Grant joinLeave_, send_;
};

}  // namespace wsgw
