// The embedded connection table: SQLite in WAL mode (other processes may read it while we run), written
// by one store thread that commits everything queued since its last commit in one transaction (lastActiveAt
// touches, which wake nobody, at the latest on its one-second tick), retries a failed commit with backoff
// until it succeeds, and watches that the database file is still the one it opened. The
// one-gateway-per-database lock that is taken before the table is opened is in database_lock.h.
#pragma once

#include "connection_store.h"
#include "database_lock.h"

#include <functional>
#include <memory>
#include <string>

namespace wsgw {

// Opens (creating parent directories and the file) and starts the writer thread; nullptr and *error
// naming the path and the SQLite error on failure.
// `lock`, when given, is checked with the database file once a second (DatabaseLock::keepHeld). The wait for
// another process's lock while setting up ends early when `giveUp` says so (a stop asked for at start-up).
std::unique_ptr<ConnectionStore> openSqliteStore(const std::string &path, std::string *error, DatabaseLock *lock = nullptr,
                                                 std::function<bool()> giveUp = {});

}  // namespace wsgw
