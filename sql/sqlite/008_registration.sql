-- Registration checks (RDAP, WHOIS). The domain keeps when its registration check is next
-- due (0: at once) and the expiry the last successful lookup found. The current state is
-- one row per domain; history is one entry per check that changed something, its fields
-- a JSON object {"<field>": {"before", "after"}}. The record itself is stored as the JSON
-- the API shows (lib/registration), so both backends hold it alike.
ALTER TABLE domains ADD COLUMN registration_expires_at INTEGER;
ALTER TABLE domains ADD COLUMN registration_next_at INTEGER NOT NULL DEFAULT 0;

CREATE INDEX domains_registration_due ON domains (registration_next_at) WHERE enabled;

CREATE TABLE registration_current (
    domain_id   INTEGER PRIMARY KEY REFERENCES domains (id) ON DELETE CASCADE,
    status      INTEGER NOT NULL,                 -- enum dm_reg_status
    source      INTEGER NOT NULL DEFAULT 0,       -- enum dm_reg_source
    registrable TEXT    NOT NULL DEFAULT '',
    error       TEXT,
    data        TEXT,                             -- NULL: never looked up successfully
    raw         TEXT,                             -- WHOIS text of the last WHOIS lookup
    checked_at  INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE registration_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id   INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    observed_at INTEGER NOT NULL,
    fields      TEXT    NOT NULL
);

CREATE INDEX registration_changes_domain ON registration_changes (domain_id, id);
