#include "connection_registry.h"

namespace wsgw {

ConnectionRegistry::Shard &ConnectionRegistry::shardFor(const std::string &id) const {
    return shards_[std::hash<std::string>{}(id) % kShards];
}

void ConnectionRegistry::add(std::shared_ptr<LiveConnection> conn) {
    Shard &s = shardFor(conn->info.connectionId);
    std::lock_guard lock(s.mutex);
    std::string_view key = conn->info.connectionId;
    auto [it, inserted] = s.map.emplace(key, std::move(conn));
    if (!inserted) return;
    it->second->registered.store(true, std::memory_order_release);
    count_.fetch_add(1, std::memory_order_relaxed);
}

void ConnectionRegistry::remove(const std::string &connectionId) {
    Shard &s = shardFor(connectionId);
    std::lock_guard lock(s.mutex);
    auto it = s.map.find(connectionId);
    if (it == s.map.end()) return;
    it->second->registered.store(false, std::memory_order_release);
    s.map.erase(it);  // by iterator: the key views the ID of the connection this may free
    count_.fetch_sub(1, std::memory_order_relaxed);
}

std::shared_ptr<LiveConnection> ConnectionRegistry::find(const std::string &connectionId) const {
    Shard &s = shardFor(connectionId);
    std::lock_guard lock(s.mutex);
    auto it = s.map.find(connectionId);
    return it == s.map.end() ? nullptr : it->second;
}

void ConnectionRegistry::forEach(const std::function<void(const std::shared_ptr<LiveConnection> &)> &fn) const {
    for (auto &s : shards_) {
        std::vector<std::shared_ptr<LiveConnection>> copy;
        {
            std::lock_guard lock(s.mutex);
            copy.reserve(s.map.size());
            for (auto &kv : s.map) copy.push_back(kv.second);
        }
        for (auto &c : copy) fn(c);
    }
}

}  // namespace wsgw
