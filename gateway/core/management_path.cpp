#include "management_path.h"

#include <algorithm>
#include <vector>

namespace wsgw {

ManagementPath parseManagementPath(std::string_view rawPath) {
    ManagementPath mp;
    // Split on the raw '/' first: an encoded %2F inside a segment is data, not a separator.
    std::vector<std::string> segments;
    if (rawPath.empty() || rawPath[0] != '/') {
        mp.error = "the path must start with '/'";
        return mp;
    }
    std::string_view rest = rawPath.substr(1);
    for (;;) {
        size_t slash = rest.find('/');
        bool ok = true;
        std::string seg = percentDecode(rest.substr(0, slash), &ok);
        if (!ok) {
            std::string_view raw = rest.substr(0, std::min(slash, rest.size()));
            mp.badEncoding = true;
            mp.error = "malformed percent-encoding in the path segment '" + std::string(raw.substr(0, 64)) +
                       "': every '%' must be followed by two hex digits, and %00 (NUL) is not allowed";
            return mp;
        }
        segments.push_back(std::move(seg));
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    size_t at = 0;
    auto ours = [](const std::string &s) { return s == "@connections" || s == "@groups" || s == "@broadcast" || s == "@users"; };
    if (segments.size() >= 2 && !ours(segments[0])) {
        mp.stage = segments[0];
        at = 1;
    }
    if (segments[at] == "@broadcast") {
        if (segments.size() - at == 1) mp.target = ManagementTarget::Broadcast;
        else mp.error = "expected /@broadcast";
        return mp;
    }
    if (segments[at] == "@users") {
        if (segments.size() - at == 2 && !segments[at + 1].empty()) {
            mp.target = ManagementTarget::User;
            mp.user = segments[at + 1];
        } else {
            mp.error = "expected /@users/{userId}";
        }
        return mp;
    }
    if (segments[at] == "@groups") {
        size_t n = segments.size() - at;
        if ((n == 2 || n == 4) && !segments[at + 1].empty()) {
            mp.group = segments[at + 1];
            if (n == 2) {
                mp.target = ManagementTarget::Group;
                return mp;
            }
            if (segments[at + 2] == "connections" && !segments[at + 3].empty()) {
                mp.target = ManagementTarget::GroupMember;
                mp.connectionId = segments[at + 3];
                return mp;
            }
        }
        mp.error = "expected /@groups/{group} or /@groups/{group}/connections/{connectionId}";
        return mp;
    }
    if (segments[at] != "@connections") {
        mp.error = "unknown path";
        return mp;
    }
    size_t left = segments.size() - at;
    if (left == 1) {
        mp.target = ManagementTarget::ConnectionList;
        return mp;
    }
    if (left == 2 && !segments[at + 1].empty()) {
        mp.target = ManagementTarget::Connection;
        mp.connectionId = segments[at + 1];
        return mp;
    }
    mp.error = "expected /@connections/{connectionId}";
    return mp;
}

}  // namespace wsgw
