#include "group_registry.h"

namespace wsgw {

bool isValidGroupName(std::string_view name) {
    if (name.empty() || name.size() > 128) return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                  c == '.' || c == '~' || c == ':' || c == '@';
        if (!ok) return false;
    }
    return true;
}

std::string groupNameRule() { return "a group name is 1 to 128 characters of A-Z, a-z, 0-9 and - _ . ~ : @"; }

GroupRegistry::AddResult GroupRegistry::add(const std::string &group, const std::string &connectionId, bool *firstLocal) {
    std::lock_guard lock(mutex_);
    auto &mine = byConnection_[connectionId];
    if (mine.count(group)) {
        if (firstLocal) *firstLocal = false;
        return AddResult::AlreadyMember;
    }
    if (mine.size() >= kMaxGroupsPerConnection) {
        if (mine.empty()) byConnection_.erase(connectionId);
        if (firstLocal) *firstLocal = false;
        return AddResult::TooManyGroups;
    }
    mine.insert(group);
    auto &members = byGroup_[group];
    if (firstLocal) *firstLocal = members.empty();
    members.insert(connectionId);
    return AddResult::Added;
}

bool GroupRegistry::remove(const std::string &group, const std::string &connectionId, bool *lastLocal) {
    std::lock_guard lock(mutex_);
    if (lastLocal) *lastLocal = false;
    auto c = byConnection_.find(connectionId);
    if (c == byConnection_.end() || !c->second.erase(group)) return false;
    if (c->second.empty()) byConnection_.erase(c);
    auto g = byGroup_.find(group);
    if (g != byGroup_.end()) {
        g->second.erase(connectionId);
        if (g->second.empty()) {
            byGroup_.erase(g);
            if (lastLocal) *lastLocal = true;
        }
    }
    return true;
}

std::vector<std::string> GroupRegistry::removeConnection(const std::string &connectionId) {
    std::vector<std::string> emptied;
    std::lock_guard lock(mutex_);
    auto c = byConnection_.find(connectionId);
    if (c == byConnection_.end()) return emptied;
    for (const auto &group : c->second) {
        auto g = byGroup_.find(group);
        if (g == byGroup_.end()) continue;
        g->second.erase(connectionId);
        if (g->second.empty()) {
            byGroup_.erase(g);
            emptied.push_back(group);
        }
    }
    byConnection_.erase(c);
    return emptied;
}

std::vector<std::string> GroupRegistry::members(const std::string &group) const {
    std::lock_guard lock(mutex_);
    auto g = byGroup_.find(group);
    if (g == byGroup_.end()) return {};
    return {g->second.begin(), g->second.end()};
}

std::vector<std::string> GroupRegistry::groupsOf(const std::string &connectionId) const {
    std::lock_guard lock(mutex_);
    auto c = byConnection_.find(connectionId);
    if (c == byConnection_.end()) return {};
    return {c->second.begin(), c->second.end()};
}

std::vector<std::string> GroupRegistry::groups() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    out.reserve(byGroup_.size());
    for (const auto &[g, m] : byGroup_) out.push_back(g);
    return out;
}

std::vector<std::pair<std::string, std::string>> GroupRegistry::memberships() const {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto &[g, m] : byGroup_)
        for (const auto &id : m) out.emplace_back(g, id);
    return out;
}

size_t GroupRegistry::groupCount() const {
    std::lock_guard lock(mutex_);
    return byGroup_.size();
}

}  // namespace wsgw
