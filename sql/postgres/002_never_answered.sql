-- A record type whose lookups have only ever failed has never held an answer: its row keeps
-- changed_at 0, so that its first real answer is a first observation (before: null) and not
-- a change from an empty set. Rows written before this rule took the time of the failed
-- check instead. Every first answer writes a history entry, so a failed row (status 3,
-- DM_RRS_ERROR) without any entry of its type never answered. The same repair as
-- sql/sqlite/003_never_answered.sql; the (domain_id, id) index finds a domain's entries.
UPDATE dns_current SET changed_at = 0
 WHERE status = 3
   AND NOT EXISTS (SELECT 1 FROM dns_changes AS c
                    WHERE c.domain_id = dns_current.domain_id AND c.type = dns_current.type);
