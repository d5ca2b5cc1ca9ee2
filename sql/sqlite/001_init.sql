-- Domain Monitor, SQLite schema 1. Times are unix milliseconds; NULL means never.
-- AUTOINCREMENT keeps ids from being reused after deletes: a late scan result for a deleted
-- domain must never land on a new one, and change and event ids are cursors for clients.

CREATE TABLE domains (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL UNIQUE,      -- A-label, lower case
    unicode_name    TEXT    NOT NULL DEFAULT '',
    enabled         INTEGER NOT NULL DEFAULT 1,
    interval_ms     INTEGER NOT NULL DEFAULT 0,   -- 0: the configured default
    record_types    TEXT    NOT NULL DEFAULT '',  -- "A,MX"; empty: the default set
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_check_at   INTEGER NOT NULL,
    last_checked_at INTEGER,
    last_changed_at INTEGER,
    status          INTEGER NOT NULL DEFAULT 0,   -- enum dm_check_status
    status_error    TEXT,
    dns_fp          BLOB,                         -- NULL: no state yet
    phase_ms        INTEGER NOT NULL DEFAULT 0    -- [0, 2^31): this domain's slot offset
);

-- The scheduler's only query: due enabled domains, oldest first.
CREATE INDEX domains_due ON domains (next_check_at) WHERE enabled;

CREATE TABLE dns_current (
    domain_id  INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    type       INTEGER NOT NULL,
    status     INTEGER NOT NULL,                  -- enum dm_rr_status
    ttl        INTEGER NOT NULL DEFAULT 0,
    vals       TEXT    NOT NULL DEFAULT '[]',     -- JSON array of canonical strings
    error      TEXT,
    checked_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (domain_id, type)
) WITHOUT ROWID;

CREATE TABLE dns_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id   INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    type        INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    observed_at INTEGER NOT NULL,
    before      TEXT,                             -- NULL: first observation
    after       TEXT    NOT NULL,
    added       TEXT    NOT NULL,
    removed     TEXT    NOT NULL
);

CREATE INDEX dns_changes_domain ON dns_changes (domain_id, id);
CREATE INDEX dns_changes_observed ON dns_changes (observed_at);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id       TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL,
    scope        TEXT    NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    hash         BLOB    NOT NULL,                -- SHA-256 of the whole key
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE INDEX api_keys_name ON api_keys (name);

-- Events written in the same transaction as what they announce; published after commit.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    routing_key TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
