// The Lua scripts of the Redis store, each one atomic in Redis: what makes "a row has one owner" hold while
// several nodes write, reap and remove at once (redis_store.cpp runs them).
#pragma once

namespace wsgw::redis_scripts {

// ARGV: prefix, connection ID, the node that asks (its set loses the ID too). Returns the row's HGETALL.
inline constexpr const char *kTakeScript = R"lua(
local ck = ARGV[1] .. 'conn:' .. ARGV[2]
local row = redis.call('HGETALL', ck)
for _, g in ipairs(redis.call('SMEMBERS', ck .. ':groups')) do
  redis.call('SREM', ARGV[1] .. 'group:' .. g, ARGV[2])
end
for i = 1, #row, 2 do
  if row[i] == 'node' and row[i + 1] ~= ARGV[3] then
    redis.call('SREM', ARGV[1] .. 'node:' .. row[i + 1] .. ':conns', ARGV[2])
  end
end
if ARGV[3] ~= '' then redis.call('SREM', ARGV[1] .. 'node:' .. ARGV[3] .. ':conns', ARGV[2]) end
redis.call('DEL', ck, ck .. ':groups')
return row
)lua";

// ARGV: the row's key, the dead node's alive key, its set, the claimer's set, the dead node, the claimer, the ID,
// the row's reaped mark and how long it stays (ms), the dead node's registered key. Returns the row's HGETALL
// (now the claimer's), or false when it is not the dead node's or that node is alive. The mark outlives the
// row: a $disconnect the dead node still had queued (it was only paused) finds the row gone and the mark
// there, and does not run. The node is unregistered in the same step, so that its next heartbeat cannot find
// itself registered once any of its rows is adopted (RedisStore::vouchOwnRowsUntil relies on it).
inline constexpr const char *kAdoptScript = R"lua(
if redis.call('EXISTS', ARGV[2]) == 1 then return false end
if redis.call('HGET', ARGV[1], 'node') ~= ARGV[5] then
  redis.call('SREM', ARGV[3], ARGV[7])
  return false
end
redis.call('DEL', ARGV[10])
redis.call('HSET', ARGV[1], 'node', ARGV[6])
redis.call('SREM', ARGV[3], ARGV[7])
redis.call('SADD', ARGV[4], ARGV[7])
redis.call('SET', ARGV[8], ARGV[6], 'PX', ARGV[9])
return redis.call('HGETALL', ARGV[1])
)lua";

// Whether the node that asks may run a row's $disconnect now. ARGV: the row's key, its reaped mark, the asking
// node's alive key, the asking node. 1: the row is this node's and this node is alive (no reaper can adopt
// it), or it is nowhere and was never reaped (its insert did not reach Redis, or Redis lost its data). 0:
// another node adopted it (and runs it, or ran it and took the row). -1: the row is this node's but its alive
// key has expired, so a reaper may be adopting it right now: ask again once the heartbeat has renewed it
// (or the reaper has adopted it).
inline constexpr const char *kOwnerScript = R"lua(
local n = redis.call('HGET', ARGV[1], 'node')
if n == ARGV[4] then
  if redis.call('EXISTS', ARGV[3]) == 1 then return 1 end
  return -1
end
if n or redis.call('EXISTS', ARGV[2]) == 1 then return 0 end
return 1
)lua";

// A touch must not bring back a row that a remove (or a reaper) already took.
// Only ever forward, as the SQLite store's UPDATE ... AND last_active_at < ?: touches coalesce per batch, and
// an older time in a later batch must not overwrite a newer one.
inline constexpr const char *kTouchScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then
  local current = tonumber(redis.call('HGET', KEYS[1], 'lastActiveAt') or '0') or 0
  if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'lastActiveAt', ARGV[1]) end
end
return 0
)lua";

}  // namespace wsgw::redis_scripts
