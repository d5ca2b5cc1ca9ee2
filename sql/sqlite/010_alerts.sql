-- Alert rules and their deliveries. A rule's selection (events, domains, thresholds, quiet
-- period) is a JSON object written and read by lib/alert. One delivery per (rule, event):
-- the unique key is what keeps a redelivered event from alerting twice. A sender claims due
-- deliveries with a lease (claimed_by, claimed_until) as the outbox relay claims events.
CREATE TABLE alert_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    channel    TEXT    NOT NULL CHECK (channel IN ('webhook', 'email', 'sms')),
    target     TEXT    NOT NULL,
    secret     TEXT    NOT NULL DEFAULT '',
    spec       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE alert_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id         INTEGER NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    event_key       TEXT    NOT NULL,
    routing_key     TEXT    NOT NULL,
    domain          TEXT    NOT NULL DEFAULT '',
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    created_at      INTEGER NOT NULL,
    claimed_by      INTEGER,
    claimed_until   INTEGER,
    UNIQUE (rule_id, event_key)
);

-- The senders' only hot query: pending deliveries that are due.
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX alert_deliveries_rule ON alert_deliveries (rule_id, id);
CREATE INDEX alert_deliveries_domain ON alert_deliveries (rule_id, domain, delivered_at);

-- check.failing: failed scans in a row, counted in the scan's own write, and an outbox event
-- for each of the first 100 of a run and one when the check recovers (rules pick their
-- failing_scans, at most 100, out of these). Status 2 is DM_CHECK_ERROR, the number the
-- status column stores (enum dm_check_status). Only a scan that moves last_checked_at on
-- counts: a late result of an older scan does not.
ALTER TABLE domains ADD COLUMN failed_scans INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER domains_check_failing AFTER UPDATE OF last_checked_at ON domains
WHEN NEW.last_checked_at IS NOT OLD.last_checked_at AND (NEW.status = 2 OR OLD.failed_scans > 0)
BEGIN
    UPDATE domains SET failed_scans = CASE WHEN NEW.status = 2 THEN OLD.failed_scans + 1 ELSE 0 END
    WHERE id = NEW.id;
    INSERT INTO outbox (routing_key, body, created_at)
    SELECT 'check.failing',
           json_object('id', NEW.id || '-' || NEW.last_checked_at, 'domain', NEW.name,
                       'state', CASE WHEN NEW.status = 2 THEN 'failing' ELSE 'recovered' END,
                       'failed_scans', CASE WHEN NEW.status = 2 THEN OLD.failed_scans + 1
                                            ELSE OLD.failed_scans END,
                       'error', NEW.status_error,
                       'checked_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.last_checked_at / 1000.0,
                                              'unixepoch')),
           NEW.last_checked_at
    WHERE NEW.status <> 2 OR OLD.failed_scans < 100;
END;
