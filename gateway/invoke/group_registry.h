// Named groups of this node's connections (Azure Web PubSub's groups; AWS users build them by hand).
// Membership is per node: a group send is delivered by every node to its own members, so the table here
// only ever holds local connections. Thread-safe; the cluster mirrors it in Redis (cluster_node.h).
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace wsgw {

// A group name is 1 to 128 characters of A-Z a-z 0-9 and "-_.~:@" (it travels in URLs and Redis keys).
bool isValidGroupName(std::string_view name);
std::string groupNameRule();

class GroupRegistry {
public:
    static constexpr size_t kMaxGroupsPerConnection = 256;
    enum class AddResult { Added, AlreadyMember, TooManyGroups };
    // `firstLocal` is set when the group had no local member before (the node starts listening to it).
    AddResult add(const std::string &group, const std::string &connectionId, bool *firstLocal = nullptr);
    // True when the connection was a member; `lastLocal` is set when the group has no local member left.
    bool remove(const std::string &group, const std::string &connectionId, bool *lastLocal = nullptr);
    // The connection is gone: its memberships end. Returns the groups that have no local member left.
    std::vector<std::string> removeConnection(const std::string &connectionId);
    std::vector<std::string> members(const std::string &group) const;
    std::vector<std::string> groupsOf(const std::string &connectionId) const;
    std::vector<std::string> groups() const;  // every group with a local member
    std::vector<std::pair<std::string, std::string>> memberships() const;  // (group, connection) pairs
    size_t groupCount() const;

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::unordered_set<std::string>> byGroup_;
    std::unordered_map<std::string, std::unordered_set<std::string>> byConnection_;
};

}  // namespace wsgw
