-- The registration claim takes due domains in (registration_next_at, id) order. With the
-- time alone in the index, every domain due at the same instant (all of them, at the first
-- start) had to be read and sorted by id for each claim of one.
DROP INDEX domains_registration_due;
CREATE INDEX domains_registration_due ON domains (registration_next_at, id) WHERE enabled;
