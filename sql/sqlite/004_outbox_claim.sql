-- Outbox events are claimed by a relay before it publishes them, so that relays in several
-- processes never publish the same event while a claim holds: claimed_by is the relay's
-- owner token, claimed_until the end of its lease (unix ms). NULL: nobody holds it. A relay
-- that dies leaves its claims to expire; another one takes them then.
ALTER TABLE outbox ADD COLUMN claimed_by INTEGER;
ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
