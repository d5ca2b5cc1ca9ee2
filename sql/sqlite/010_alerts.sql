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
