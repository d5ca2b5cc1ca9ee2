/* Alerts: what a rule selects, when a delivery is tried again, how a message reads and is
 * signed, which addresses may be sent to, and when an expiry or a failing check fires. Every
 * decision of the alert service lives here, as pure functions over values; the service
 * (src/domainmon/alert_service.c) only feeds them events and stored state. The channels
 * that send (libcurl) are in include/dm/alert_send.h.
 *
 * Thread-safety: none needed; functions only touch what they are given. */
#ifndef DM_ALERT_H
#define DM_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

#include "dm/store.h"

/* Event topics a rule may select (bits of dm_alert_spec.events). */
enum dm_alert_event {
        DM_ALERT_EV_CHANGE_DNS = 1u << 0, /* change.dns.<any type> */
        DM_ALERT_EV_CHANGE_TLS = 1u << 1,
        DM_ALERT_EV_CHANGE_REGISTRATION = 1u << 2,
        DM_ALERT_EV_TLS_EXPIRING = 1u << 3,
        DM_ALERT_EV_REGISTRATION_EXPIRING = 1u << 4,
        DM_ALERT_EV_CHECK_FAILING = 1u << 5,
};

#define DM_ALERT_DNS_TYPES_MAX 32 /* change.dns.<TYPE> entries of one rule */
#define DM_ALERT_DOMAINS_MAX 1000 /* names of one rule */
#define DM_ALERT_EXPIRY_MAX 16    /* thresholds of one rule */
#define DM_ALERT_EXPIRY_DAYS_MAX 3650
#define DM_ALERT_FAILING_MAX 100 /* check.failing events come for the first 100 of a run */
#define DM_ALERT_QUIET_MAX_S (30LL * 86400)

/* What a rule selects, parsed from its stored spec. */
struct dm_alert_spec {
        unsigned events;                            /* DM_ALERT_EV_* */
        uint16_t dns_types[DM_ALERT_DNS_TYPES_MAX]; /* change.dns.<TYPE> */
        size_t ndns_types;
        char (*domains)[DM_NAME_MAX + 1]; /* owned, sorted A-labels; NULL with 0: every domain */
        size_t ndomains;
        unsigned expiry_days[DM_ALERT_EXPIRY_MAX]; /* descending, distinct */
        size_t nexpiry;
        unsigned failing_scans; /* >= 1 */
        int64_t quiet_ms;       /* 0: none */
};

/* What was wrong with a rule from outside: the field, a message, and the status to answer
 * (400 for a malformed value, 422 for a well-formed target the policy refuses). */
struct dm_alert_error {
        char field[32];
        char detail[200];
        unsigned status;
};

/* Applies the members of `body` (a JSON object from the API) to `rule`: on create
 * (`create` true) `rule` starts empty and name, channel and target are required, the rest
 * take their defaults (every domain, expiry_days [30, 14, 7, 1], failing_scans 3, no quiet
 * period, a new secret for a webhook); on update the members present replace the rule's.
 * Every field is checked (unknown members included); private, loopback and link-local
 * targets are refused unless `allow_private`. On success rule->spec is replaced by the new
 * canonical spec (owned by rule) and 0 returned. On failure DM_EINVAL (or DM_ENOMEM) with
 * *ret_err filled, and `rule` unchanged. */
int dm_alert_rule_apply(struct dm_alert_rule *rule, const json_t *body, bool create,
                        bool allow_private, struct dm_alert_error *ret_err);

/* Parses a stored spec. Returns 0, DM_EPARSE, DM_ENOMEM. Free with dm_alert_spec_done. */
int dm_alert_spec_parse(const char *spec, struct dm_alert_spec *ret_spec);
void dm_alert_spec_done(struct dm_alert_spec *spec);

/* The rule as the API shows it: id, name, channel, target, events, domains (null: every
 * domain), expiry_days, failing_scans, quiet_period (seconds or null), created_at,
 * updated_at, and the secret when `with_secret` (only the create answer shows it). NULL on
 * ENOMEM or an unreadable spec. */
json_t *dm_alert_rule_json(const struct dm_alert_rule *rule, bool with_secret);

/* An event from the bus, as alerts see it. */
struct dm_alert_event_info {
        char key[DM_ALERT_EVENT_KEY_MAX]; /* "<routing key>:<id>": the event's stable id */
        char domain[DM_NAME_MAX + 1];     /* A-label; "" when the body names none */
        /* A change event of a first observation ("before": null): what a new domain is, not
         * a change of it. No rule alerts on it. */
        bool initial;
        /* check.failing: the state ("failing" after a failed scan, "recovered" on the first
         * good one) and the failed scans in a row (so far; before the recovery). */
        enum dm_alert_failing_state {
                DM_ALERT_NOT_FAILING = 0,
                DM_ALERT_FAILING,
                DM_ALERT_RECOVERED
        } failing;
        unsigned failed_scans;
};

/* Reads the routing key and body of a bus message: the body must be a JSON object with an
 * integer or string "id"; "domain" (when present) must be a domain name; a check.failing
 * event must have "state" and "failed_scans". Returns 0, DM_EPARSE (not such an object) or
 * DM_EINVAL (a key or name that does not fit). */
int dm_alert_event_read(const char *routing_key, const char *body, size_t len,
                        struct dm_alert_event_info *ret_info);

/* Whether a rule with `spec` wants the event of `routing_key` read into `ev` (about
 * ev->domain; "" for none: then only rules for every domain match). A check.failing event
 * matches at the rule's failing_scans-th failure in a row, and on the recovery of a run that
 * reached it (dm_alert_failing_fires). The caller skips initial events. */
bool dm_alert_spec_matches(const struct dm_alert_spec *spec, const char *routing_key,
                           const struct dm_alert_event_info *ev);

/* ---- retries ---- */

/* When to try again after `attempts` (>= 1) failed tries: retry_min_ms doubled per try
 * after the first, at most DM_ALERT_BACKOFF_MAX_MS, plus a jitter of up to half of it drawn
 * from `rnd`. Never sooner than retry_min_ms. */
#define DM_ALERT_BACKOFF_MAX_MS (6LL * 3600 * 1000)
int64_t dm_alert_backoff_ms(unsigned attempts, int64_t retry_min_ms, uint32_t rnd);

/* Records one try's outcome on a delivery: attempts + 1; sent: delivered at `now`; else
 * `error` kept and, below max_attempts tries, due again after dm_alert_backoff_ms, or failed
 * after the last. */
void dm_alert_delivery_outcome(struct dm_alert_delivery *d, bool sent, const char *error,
                               int64_t now, int64_t retry_min_ms, unsigned max_attempts,
                               uint32_t rnd);

/* ---- target policy ---- */

/* True for addresses an alert target may not be unless allowed: loopback, private (RFC 1918,
 * fc00::/7), link-local (169.254/16, fe80::/10), unspecified, CGNAT (100.64/10), multicast,
 * and IPv4-mapped forms of those. */
bool dm_alert_addr_private(const struct sockaddr *sa);
/* The same for a literal host name: an IP literal in those ranges or "localhost". Names
 * resolved later are checked at connect time with dm_alert_addr_private. */
bool dm_alert_host_private(const char *host);

/* ---- signing (Standard Webhooks) ---- */

#define DM_ALERT_SIGNATURE_MAX 64 /* "v1," + base64 of 32 bytes + NUL */

/* A new secret "whsec_" + base64 of 24 random bytes. Returns 0 or DM_EIO. */
int dm_alert_secret_new(char *buf, size_t size);
/* "v1,<base64 HMAC-SHA256 of "<msg_id>.<timestamp>.<body>">", keyed with the base64-decoded
 * part of `secret` after "whsec_". Returns 0, DM_EINVAL (a malformed secret) or DM_E2BIG. */
int dm_alert_sign(const char *secret, const char *msg_id, int64_t timestamp, const char *body,
                  size_t len, char *buf, size_t size);

/* ---- messages ---- */

/* One message to send: the deliveries it carries (all of one rule). One delivery is a plain
 * alert; several of one domain fold into one message; a digest lists several domains. */
struct dm_alert_message {
        const struct dm_alert_delivery *const *items;
        size_t n;
        bool digest;
};

/* How the claimed deliveries of one rule (items, n >= 1, all of rule_id) go out: when more
 * than `digest_min` domains are among them, one digest; otherwise one message per domain, in
 * the order of each domain's first delivery. Writes up to n messages into ret_msgs (caller
 * allocated, n entries), whose items point into `order` (caller allocated, n entries).
 * Returns how many messages. */
size_t dm_alert_plan(const struct dm_alert_delivery *items, size_t n, size_t digest_min,
                     const struct dm_alert_delivery **order, struct dm_alert_message *ret_msgs);

/* The message id shown to receivers (webhook-id, Message-ID): "msg_<rule id>_<first
 * delivery id>", the same on every try of the same message. */
void dm_alert_message_id(const struct dm_alert_message *m, char *buf, size_t size);

/* Webhook body: {"type", "timestamp", "data"}: for one delivery `type` its topic and `data`
 * its event object; for several, type "alert.digest" and data {"domains", "events": [{"type",
 * "data"}]}. malloc'd string or NULL on ENOMEM. */
char *dm_alert_render_webhook(const struct dm_alert_message *m, int64_t now);

/* Email: a subject naming the domain (or "N domains") and what changed, and a plain-text
 * body with the diff of every event. Returns 0 or DM_ENOMEM; both malloc'd. */
int dm_alert_render_email(const struct dm_alert_message *m, const char *rule_name,
                          char **ret_subject, char **ret_body);

/* SMS: one segment of at most DM_ALERT_SMS_MAX characters (GSM-safe ASCII), cut with a
 * pointer to the domain. Returns buf. */
#define DM_ALERT_SMS_MAX 160
const char *dm_alert_render_sms(const struct dm_alert_message *m, char *buf, size_t size);

/* ---- thresholds ---- */

/* Expiry alerts (tls.expiring, registration.expiring). The decision needs no state: at any
 * moment the threshold to alert about is the nearest one crossed, and an alert is named by
 * (rule, kind, domain, expiry date, threshold), a key the store keeps unique. So a threshold
 * fires once; when several are crossed at once (first sight, or a long outage) only the
 * nearest fires, and the farther ones, being no longer the nearest, never do; a new expiry
 * date (a renewal) is a new name, so every threshold is armed again for it. */
enum dm_alert_expiry_kind { DM_ALERT_EXPIRY_TLS = 0, DM_ALERT_EXPIRY_REGISTRATION };

/* The nearest threshold (days) crossed by `expires_at` at `now`, or 0 for none (also when
 * expires_at is 0, unknown). Days left are rounded up: 6 days and 1 hour left has not crossed
 * the 6-day mark; a date already past has 0 days left and has crossed every threshold.
 * thresholds: descending, as in dm_alert_spec. *ret_days_left (may be NULL) is written when
 * a threshold is returned. */
unsigned dm_alert_expiry_threshold(const unsigned *thresholds, size_t n, int64_t expires_at,
                                   int64_t now, int64_t *ret_days_left);
/* "tls.expiring" or "registration.expiring". */
const char *dm_alert_expiry_routing_key(enum dm_alert_expiry_kind kind);
/* Fills a delivery (rule_id and due time left to the caller) for an expiry alert: event key
 * "<routing key>:<domain id>-<expiry, Unix seconds>-<threshold>", and body {"id", "domain",
 * "kind": "tls"|"registration", "expires_at", "days_left", "threshold"}. The body is
 * malloc'd (ret_delivery->body, the caller frees it). DM_EINVAL for an empty or overlong
 * domain, an unknown date or threshold 0; DM_ENOMEM. */
int dm_alert_expiry_event(enum dm_alert_expiry_kind kind, int64_t domain_id, const char *domain,
                          int64_t expires_at, int64_t now, unsigned threshold,
                          struct dm_alert_delivery *ret_delivery);

/* Whether a rule with `spec` alerts now about `domain`'s expiry of `kind` at `expires_at`
 * (0: unknown): the rule selects the event and the domain, and a threshold is crossed. Returns
 * 1 and fills *ret_delivery as dm_alert_expiry_event does (rule_id and due time left to the
 * caller; body malloc'd), 0 when nothing is to be sent, or DM_ENOMEM. Recording the delivery
 * under its unique key is what makes it fire once: the caller treats DM_EEXIST as done. */
int dm_alert_expiry_check(const struct dm_alert_spec *spec, enum dm_alert_expiry_kind kind,
                          int64_t domain_id, const char *domain, int64_t expires_at, int64_t now,
                          struct dm_alert_delivery *ret_delivery);
/* The largest threshold (days) of a rule that selects an expiry event, else 0: how far
 * ahead the rule looks. */
unsigned dm_alert_spec_expiry_window(const struct dm_alert_spec *spec);

/* check.failing: whether a rule with `failing_scans` fires for an event of `state` after
 * `failed_scans` failures in a row: once when the run reaches it, once more when a run that
 * reached it ends. */
bool dm_alert_failing_fires(unsigned failing_scans, enum dm_alert_failing_state state,
                            unsigned failed_scans);

#endif
