// Azure Web PubSub roles and permissions of one client (see the header).
#include "webpubsub_permissions.h"

#include "text.h"

#include <cctype>

namespace wsgw {

namespace {

constexpr std::string_view kJoinLeaveRole = "webpubsub.joinLeaveGroup";
constexpr std::string_view kSendRole = "webpubsub.sendToGroup";

}  // namespace

std::optional<WpsPermission> wpsPermissionOf(std::string_view name) {
    if (equalsIgnoreCase(name, "joinLeaveGroup")) return WpsPermission::JoinLeaveGroup;
    if (equalsIgnoreCase(name, "sendToGroup")) return WpsPermission::SendToGroup;
    return std::nullopt;
}

std::vector<std::string> WpsPermissions::addRoles(const std::vector<std::string> &roles) {
    std::vector<std::string> unknown;
    for (const std::string &role : roles) {
        std::string_view r = role;
        bool matched = false;
        for (auto [prefix, perm] : {std::pair{kJoinLeaveRole, WpsPermission::JoinLeaveGroup},
                                    std::pair{kSendRole, WpsPermission::SendToGroup}}) {
            if (r == prefix) {
                grant(perm, "");
                matched = true;
            } else if (r.size() > prefix.size() + 1 && r.substr(0, prefix.size()) == prefix && r[prefix.size()] == '.') {
                grant(perm, r.substr(prefix.size() + 1));  // the group is everything after the first '.'
                matched = true;
            }
        }
        if (!matched) unknown.push_back(role);
    }
    return unknown;
}

bool WpsPermissions::allows(WpsPermission p, std::string_view group) const {
    const Grant &g = of(p);
    return g.everyGroup || g.groups.find(group) != g.groups.end();
}

void WpsPermissions::grant(WpsPermission p, std::string_view group) {
    Grant &g = of(p);
    if (group.empty()) g.everyGroup = true;
    else g.groups.emplace(group);
}

void WpsPermissions::revoke(WpsPermission p, std::string_view group) {
    Grant &g = of(p);
    if (group.empty()) {
        g.everyGroup = false;
        g.groups.clear();
        return;
    }
    if (auto it = g.groups.find(group); it != g.groups.end()) g.groups.erase(it);
}

bool WpsPermissions::check(WpsPermission p, std::string_view group) const {
    if (group.empty()) return of(p).everyGroup;
    return allows(p, group);
}

std::vector<std::string> WpsPermissions::roles() const {
    std::vector<std::string> out;
    for (auto [prefix, perm] : {std::pair{kJoinLeaveRole, WpsPermission::JoinLeaveGroup},
                                std::pair{kSendRole, WpsPermission::SendToGroup}}) {
        const Grant &g = of(perm);
        if (g.everyGroup) out.emplace_back(prefix);
        for (const std::string &group : g.groups) out.push_back(std::string(prefix) + "." + group);
    }
    return out;
}

}  // namespace wsgw
