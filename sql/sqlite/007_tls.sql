-- The TLS check: per domain its last TLS fingerprint (NULL: no state yet, so that
-- `tls_fp IS ?` matches it), when it was last checked and the earliest not_after over its
-- endpoints; the current state per endpoint (port, address); the history of changes (the
-- leaf's fingerprint or the chain's validity), one entry per endpoint that changed.
ALTER TABLE domains ADD COLUMN tls_fp BLOB;
ALTER TABLE domains ADD COLUMN tls_checked_at INTEGER;
ALTER TABLE domains ADD COLUMN tls_expires_at INTEGER;

CREATE TABLE tls_current (
    domain_id   INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    port        INTEGER NOT NULL,
    address     TEXT    NOT NULL,              -- numeric; '' when the name had none
    status      INTEGER NOT NULL,              -- enum dm_tls_status
    error       TEXT,                          -- status error: why
    protocol    TEXT    NOT NULL DEFAULT '',
    chain_valid INTEGER NOT NULL DEFAULT 0,
    chain_error TEXT    NOT NULL DEFAULT '',
    sha256      TEXT    NOT NULL DEFAULT '',   -- leaf fingerprint; '' never read
    not_after   INTEGER NOT NULL DEFAULT 0,
    cert        TEXT,                          -- certificate object (JSON); NULL never read
    checked_at  INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (domain_id, port, address)
) WITHOUT ROWID;

CREATE TABLE tls_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id   INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    port        INTEGER NOT NULL,
    address     TEXT    NOT NULL,
    chain_valid INTEGER NOT NULL,
    observed_at INTEGER NOT NULL,
    before      TEXT,                          -- NULL: first sight
    after       TEXT    NOT NULL
);

CREATE INDEX tls_changes_domain ON tls_changes (domain_id, id);
CREATE INDEX tls_changes_observed ON tls_changes (observed_at);
