-- History outlives its domain: a deleted domain's changes stay readable under its name (and
-- are shown again should the name be added again), until purged. dns_changes carries the
-- name it was recorded under; deleting a domain no longer deletes them (lib/store/pg.c).
-- serial_only marks an SOA change in the serial alone.

ALTER TABLE dns_changes ADD COLUMN domain text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE dns_changes ADD COLUMN serial_only boolean NOT NULL DEFAULT false;

UPDATE dns_changes AS c SET domain = d.name FROM domains AS d WHERE d.id = c.domain_id;

-- A name's history, newest first.
CREATE INDEX dns_changes_name ON dns_changes (domain, id);
