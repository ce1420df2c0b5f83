// Where connection rows live. The network thread calls insert/touch/remove and must never wait on disk,
// so implementations queue and batch. A shared store (Redis) can replace SQLite behind this interface
// when several gateway nodes serve one API.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace wsgw {

struct ConnectionRow {
    std::string connectionId, nodeId;
    int64_t connectedAtMs = 0, lastActiveAtMs = 0;
    std::string sourceIp, userAgent, headersJson = "{}", queryJson = "{}", authorizerJson;  // "" -> NULL
};

class ConnectionStore {
public:
    virtual ~ConnectionStore() = default;
    virtual void insert(ConnectionRow row) = 0;                                       // queued
    // Queued like insert(), but `committed` is called once the row is durable (a kill -9 after that leaves
    // the row for start-up recovery), with false if the store stopped before it could commit it. It runs on
    // the store's thread: it must only hand the work on (post to a loop, submit an invocation). Writes that
    // wait for it are committed at once, together (group commit), instead of after the batching delay.
    // Stores without a durable path call it at once with true (the row is only queued).
    virtual void insertDurable(ConnectionRow row, std::function<void(bool committed)> committed) {
        insert(std::move(row));
        if (committed) committed(true);
    }
    virtual void touch(const std::string &connectionId, int64_t lastActiveAtMs) = 0;  // queued, coalesced
    virtual void remove(const std::string &connectionId) = 0;                        // queued
    // remove() of a connection that is done with $disconnect: it has run, or none is owed (an upgrade
    // refused after its row was written). The SQLite store journals the ID before queueing the removal, so
    // that a kill -9 before the removal is committed does not make the next start run $disconnect for it.
    virtual void removeClosed(const std::string &connectionId) { remove(connectionId); }
    // Asked on the worker just before a $disconnect's handler runs (a shared store: another node may have
    // reaped this one while the $disconnect waited, and run it already). Ours: run it. Elsewhere: another
    // node took the row over; do not run it, and leave the row alone. Unknown: the store cannot tell now
    // (unreachable); ask again once whenReachable() has called back. A single node's table is always ours.
    enum class DisconnectOwner { Ours, Elsewhere, Unknown };
    virtual DisconnectOwner disconnectOwner(const std::string &connectionId) {
        (void)connectionId;
        return DisconnectOwner::Ours;
    }
    // Calls `ready` once (on the store's thread; it must only hand work on) after the store has reached its
    // backend again, no sooner than a short pause. Stores that are always reachable call it at once.
    virtual void whenReachable(std::function<void()> ready) { ready(); }
    virtual void flush() = 0;  // blocks until everything queued before the call is committed
    // The shutdown's last write, bounded: commits what is queued, or gives it up once the table has stayed
    // unwritable for a few seconds (logged; the SQLite store journals the removals it gave up, so the next
    // start does not run their $disconnect again). Writes after it are dropped. For a shutdown that cannot
    // destroy the store (threads still inside handlers may call it), where flush() could wait for ever.
    virtual void stopWrites() { flush(); }
    // Writes queued and not yet committed, including a batch whose commit failed and is being retried.
    virtual size_t queueDepth() const = 0;
    virtual bool writable() const = 0;  // false while commits fail (disk full, locked, read-only)
    // True while a failed commit is being retried: a new connection's row would only wait in memory (with
    // its headers) until the store recovers, so new upgrades are refused instead (connect_flow.h).
    virtual bool writesFailing() const { return false; }
    // What /readyz says while the table is not writable: "" when it is.
    virtual std::string problem() const {
        return writable() ? std::string() : "the connection table cannot be written (see the error log)";
    }
    // Start-up recovery: the rows this node left after an unclean stop. Reading them deletes nothing: the
    // caller runs each one's $disconnect and remove()s the row after it, so a crash or a stop during
    // recovery leaves the rest for the next start. (Deleting them with the read lost every $disconnect not
    // yet run when a second crash came; now one cut off mid-run may run again, and none is lost.) Rows whose
    // $disconnect ran before the stop but whose removal was not committed (removeClosed; the SQLite store's
    // journal) are deleted here and not returned. Empty with
    // *error set when the table cannot be read or cleaned yet: try again later.
    virtual std::vector<ConnectionRow> rowsLeftByNode(const std::string &nodeId, std::string *error = nullptr) = 0;
    virtual std::optional<ConnectionRow> find(const std::string &connectionId) = 0;
};

}  // namespace wsgw
