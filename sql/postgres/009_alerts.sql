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

-- check.failing: failed scans in a row, counted in the scan's own write, and an outbox event
-- for each of the first 100 of a run and one when the check recovers (rules pick their
-- failing_scans, at most 100, out of these). Status 2 is DM_CHECK_ERROR, the number the
-- status column stores (enum dm_check_status). Only a scan that moves last_checked_at on
-- counts: a late result of an older scan does not.
ALTER TABLE domains ADD COLUMN failed_scans integer NOT NULL DEFAULT 0;

CREATE FUNCTION domains_check_failing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.failed_scans := CASE WHEN NEW.status = 2 THEN OLD.failed_scans + 1 ELSE 0 END;
    IF NEW.status <> 2 OR OLD.failed_scans < 100 THEN
        INSERT INTO outbox (routing_key, body, created_at)
        VALUES ('check.failing',
                json_build_object(
                    'id', NEW.id || '-' || NEW.last_checked_at, 'domain', NEW.name,
                    'state', CASE WHEN NEW.status = 2 THEN 'failing' ELSE 'recovered' END,
                    'failed_scans', CASE WHEN NEW.status = 2 THEN NEW.failed_scans
                                         ELSE OLD.failed_scans END,
                    'error', NEW.status_error,
                    'checked_at', to_char(to_timestamp(NEW.last_checked_at / 1000.0)
                                          AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                )::text,
                NEW.last_checked_at);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER domains_check_failing BEFORE UPDATE OF last_checked_at ON domains
    FOR EACH ROW
    WHEN (NEW.last_checked_at IS DISTINCT FROM OLD.last_checked_at
          AND (NEW.status = 2 OR OLD.failed_scans > 0))
    EXECUTE FUNCTION domains_check_failing();
