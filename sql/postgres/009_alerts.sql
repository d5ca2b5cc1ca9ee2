-- Alert rules and their deliveries. A rule's selection (events, domains, thresholds, quiet
-- period) is a JSON object written and read by lib/alert. One delivery per (rule, event):
-- the unique key is what keeps a redelivered event from alerting twice. Senders claim due
-- deliveries with FOR UPDATE SKIP LOCKED and a lease (claimed_by, claimed_until).
CREATE TABLE alert_rules (
    id         bigserial PRIMARY KEY,
    name       text   NOT NULL,
    channel    text   NOT NULL CHECK (channel IN ('webhook', 'email', 'sms')),
    target     text   NOT NULL,
    secret     text   NOT NULL DEFAULT '',
    spec       text   NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);

CREATE TABLE alert_deliveries (
    id              bigserial PRIMARY KEY,
    rule_id         bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    event_key       text   NOT NULL,
    routing_key     text   NOT NULL,
    domain          text   NOT NULL DEFAULT '',
    body            text   NOT NULL,
    status          text   NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at bigint NOT NULL,
    delivered_at    bigint,
    created_at      bigint NOT NULL,
    claimed_by      bigint,
    claimed_until   bigint,
    UNIQUE (rule_id, event_key)
);

CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX alert_deliveries_rule ON alert_deliveries (rule_id, id);
CREATE INDEX alert_deliveries_domain ON alert_deliveries (rule_id, domain, delivered_at);
