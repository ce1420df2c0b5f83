// The embedded connection table: SQLite in WAL mode (other processes may read it while we run), written
// by one store thread that commits everything queued since its last commit in one transaction.
#pragma once

#include "connection_store.h"

#include <memory>
#include <string>

namespace wsgw {

// Opens (creating parent directories and the file) and starts the writer thread; nullptr and *error
// naming the path and the SQLite error on failure.
std::unique_ptr<ConnectionStore> openSqliteStore(const std::string &path, std::string *error);

}  // namespace wsgw
