-- The connection table of wsgw: one row per live connection, written in batches by the store thread.
-- Idempotent: the gateway runs this at every start.
CREATE TABLE IF NOT EXISTS connections (
    connection_id  TEXT PRIMARY KEY NOT NULL,
    node_id        TEXT NOT NULL,
    connected_at   INTEGER NOT NULL,   -- epoch milliseconds
    last_active_at INTEGER NOT NULL,   -- epoch milliseconds, coalesced (at most once a second)
    source_ip      TEXT NOT NULL,
    user_agent     TEXT NOT NULL,
    headers        TEXT NOT NULL,      -- JSON: {"name": ["value", ...]} as sent on $connect
    query          TEXT NOT NULL,      -- JSON: {"name": ["value", ...]}
    authorizer     TEXT                -- JSON object, or NULL without an authorizer
);
CREATE INDEX IF NOT EXISTS connections_by_node ON connections (node_id);
