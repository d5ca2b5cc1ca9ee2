-- History outlives its domain: a deleted domain's changes stay readable under its name (and
-- are shown again should the name be added again), until purged. dns_changes therefore
-- carries the domain's name and no longer cascades from domains; SQLite cannot drop a
-- foreign key, so the table is rebuilt, ids kept, and its id sequence carried over so that
-- no id is ever handed out twice.
-- serial_only marks an SOA change in the serial alone.

CREATE TABLE dns_changes_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id   INTEGER NOT NULL,                 -- the domain's id when it was recorded
    domain      TEXT    NOT NULL DEFAULT '',      -- its name (A-label)
    type        INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    observed_at INTEGER NOT NULL,
    before      TEXT,                             -- NULL: first observation
    after       TEXT    NOT NULL,
    added       TEXT    NOT NULL,
    removed     TEXT    NOT NULL,
    serial_only INTEGER NOT NULL DEFAULT 0
);

INSERT INTO dns_changes_new (id, domain_id, domain, type, status, observed_at, before, after,
                             added, removed)
SELECT c.id, c.domain_id, coalesce(d.name, ''), c.type, c.status, c.observed_at, c.before,
       c.after, c.added, c.removed
  FROM dns_changes AS c LEFT JOIN domains AS d ON d.id = c.domain_id;

-- The copy made the new table's sequence max(id); the old one may be ahead of it (entries
-- pruned at the top end).
UPDATE sqlite_sequence
   SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'dns_changes'), 0))
 WHERE name = 'dns_changes_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'dns_changes_new', seq FROM sqlite_sequence
 WHERE name = 'dns_changes'
   AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'dns_changes_new');

DROP TABLE dns_changes;
ALTER TABLE dns_changes_new RENAME TO dns_changes;

-- A name's history, newest first; the retention pruner's order.
CREATE INDEX dns_changes_name ON dns_changes (domain, id);
CREATE INDEX dns_changes_domain ON dns_changes (domain_id, id);
CREATE INDEX dns_changes_observed ON dns_changes (observed_at);
