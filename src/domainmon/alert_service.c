/* The alert service: bus events -> rules -> deliveries (one per rule and event, kept in the
 * store) -> messages sent by the channels, with retries. Two threads of its own: the bus's
 * consumer thread runs the matching, a sender thread claims what is due. Every decision is in
 * lib/alert; this file feeds it and persists what it says.
 *
 * Several processes share the work: the bus hands each event to one of them (one durable
 * queue, consumed by all), the store's unique (rule, event) key makes a redelivered event a
 * no-op, and a claim with a lease gives each due delivery to one sender. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "dm/alert.h"
#include "dm/alert_send.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

#define ALERT_QUEUE "domainmon.alerts"
#define ALERT_PREFETCH 64
#define ALERT_RULE_PAGE 500
#define ALERT_CLAIM_BATCH 200
/* Longer than a claimed batch takes to send (each try is bounded by ALERT_SEND_TIMEOUT_MS),
 * so a live sender keeps its claim; a dead one's claims come back after it. */
#define ALERT_LEASE_MS (5 * 60 * 1000)
#define ALERT_SEND_TIMEOUT_MS 10000
#define ALERT_POLL_MS 250
#define ALERT_RETRY_PAUSE_S 1

/* Event topics a rule can select. */
static const char *const alert_patterns[] = {"change.#", "tls.#", "registration.#", "check.#",
                                             NULL};

struct dm_alert_service {
        struct dm_app *app;
        struct dm_alert_send_opts send;
        int64_t owner; /* this sender's claims */
        bool consuming;
        pthread_t sender;
        pthread_mutex_t mu;
        pthread_cond_t cond;
        bool stop; /* under mu */
};

static uint32_t rnd32(void)
{
        uint32_t v = 0;
        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
                v = (uint32_t)dm_mono_ms() ^ (uint32_t)getpid();
        return v;
}

/* ---- events -> deliveries ---- */

/* Adds one delivery per matching rule. Returns 0, or a store error (the event is then put
 * back and comes again: what was added already is not added twice). */
static int alert_match(struct dm_alert_service *s, const char *routing_key, const char *body,
                       const struct dm_alert_event_info *ev)
{
        struct dm_app *app = s->app;
        int64_t after = 0;
        size_t matched = 0, added = 0;
        int ret;

        for (;;) {
                struct dm_alert_rule *rules = NULL;
                size_t n = 0;
                ret = dm_store_alert_rule_list(app->store, after, ALERT_RULE_PAGE, &rules, &n);
                if (ret < 0)
                        return ret;
                for (size_t i = 0; i < n && ret == 0; i++) {
                        struct dm_alert_spec spec;
                        after = rules[i].id;
                        if (dm_alert_spec_parse(rules[i].spec, &spec) < 0)
                                continue; /* an unreadable rule sends nothing */
                        bool match = dm_alert_spec_matches(&spec, routing_key, ev);
                        int64_t quiet = spec.quiet_ms;
                        dm_alert_spec_done(&spec);
                        if (!match)
                                continue;
                        matched++;
                        struct dm_alert_delivery d = {.rule_id = rules[i].id, .body = (char *)body};
                        snprintf(d.event_key, sizeof(d.event_key), "%s", ev->key);
                        snprintf(d.routing_key, sizeof(d.routing_key), "%s", routing_key);
                        snprintf(d.domain, sizeof(d.domain), "%s", ev->domain);
                        int64_t now = dm_now_ms();
                        d.next_attempt_at = now + app->conf.alert_group_wait_ms;
                        ret = dm_store_alert_delivery_add(app->store, &d, now, quiet);
                        if (ret == DM_EEXIST)
                                ret = 0; /* this event met this rule before */
                        else if (ret == 0)
                                added++;
                }
                dm_alert_rules_free(rules, n);
                if (ret < 0 || n < ALERT_RULE_PAGE)
                        break;
        }
        if (ret == 0 && matched > 0)
                dm_log_debug("alert", "msg=\"event matched\" event=%s rules=%zu new=%zu", ev->key,
                             matched, added);
        return ret;
}

static void alert_on_message(void *arg, const struct dm_bus_msg *msg)
{
        struct dm_alert_service *s = arg;
        struct dm_alert_event_info ev;
        char *body = strndup(msg->body, msg->len);
        int ret = body ? dm_alert_event_read(msg->routing_key, body, msg->len, &ev) : DM_ENOMEM;

        if (ret == DM_EPARSE || ret == DM_EINVAL) {
                char q[80];
                dm_log_warn("alert",
                            "msg=\"an event without a usable id or domain was dropped\" "
                            "routing_key=%s",
                            dm_log_quote(q, sizeof(q), msg->routing_key));
        } else if (ret == 0 && !ev.initial) {
                ret = alert_match(s, msg->routing_key, body, &ev);
        }
        free(body);
        if (ret == 0 || ret == DM_EPARSE || ret == DM_EINVAL) {
                int a = dm_bus_ack(s->app->bus, msg->tag);
                if (a < 0 && a != DM_ESTALE)
                        dm_log_warn("alert", "msg=\"cannot ack an event\" err=\"%s\"",
                                    dm_strerror(a));
                return;
        }
        /* The store failed: the event goes back to the queue and comes again, after a pause
         * so that an outage is not a busy loop. */
        dm_log_warn("alert",
                    "msg=\"cannot record alerts for an event; it will come again\" "
                    "err=\"%s\"",
                    dm_strerror(ret));
        sleep(ALERT_RETRY_PAUSE_S);
        dm_bus_nack(s->app->bus, msg->tag, true);
}

/* ---- expiry dates -> deliveries ---- */

#define ALERT_EXPIRY_PAGE 500
#define DAY_MS (86400LL * 1000)

struct expiry_rule {
        int64_t id;
        int64_t quiet_ms;
        struct dm_alert_spec spec;
};

/* The rules that select an expiry event; *ret_window the largest of their thresholds. */
static int expiry_rules(struct dm_app *app, struct expiry_rule **ret_rules, size_t *ret_n,
                        unsigned *ret_window)
{
        struct expiry_rule *out = NULL;
        size_t n = 0, cap = 0;
        unsigned window = 0;
        int64_t after = 0;
        int ret;

        for (;;) {
                struct dm_alert_rule *rules = NULL;
                size_t nr = 0;
                ret = dm_store_alert_rule_list(app->store, after, ALERT_RULE_PAGE, &rules, &nr);
                if (ret < 0)
                        break;
                for (size_t i = 0; i < nr && ret == 0; i++) {
                        struct dm_alert_spec spec;
                        after = rules[i].id;
                        if (dm_alert_spec_parse(rules[i].spec, &spec) < 0)
                                continue;
                        unsigned w = dm_alert_spec_expiry_window(&spec);
                        if (w == 0) {
                                dm_alert_spec_done(&spec);
                                continue;
                        }
                        if (n == cap) {
                                size_t nc = cap ? cap * 2 : 16;
                                struct expiry_rule *t = realloc(out, nc * sizeof(*out));
                                if (!t) {
                                        dm_alert_spec_done(&spec);
                                        ret = DM_ENOMEM;
                                        break;
                                }
                                out = t;
                                cap = nc;
                        }
                        out[n++] = (struct expiry_rule){
                            .id = rules[i].id, .quiet_ms = spec.quiet_ms, .spec = spec};
                        if (w > window)
                                window = w;
                }
                dm_alert_rules_free(rules, nr);
                if (ret < 0 || nr < ALERT_RULE_PAGE)
                        break;
        }
        if (ret < 0) {
                for (size_t i = 0; i < n; i++)
                        dm_alert_spec_done(&out[i].spec);
                free(out);
                return ret;
        }
        *ret_rules = out;
        *ret_n = n;
        *ret_window = window;
        return 0;
}

/* One pass over the domains whose certificate or registration expires within the largest
 * threshold of any rule: each rule says whether a threshold is crossed
 * (dm_alert_expiry_check), and the store's unique (rule, event key) turns a decision taken
 * before, here or by another alert service, into DM_EEXIST. Every alert service runs it;
 * the key keeps them from alerting twice. */
static int alert_expiry_round(struct dm_alert_service *s)
{
        struct dm_app *app = s->app;
        struct expiry_rule *rules = NULL;
        size_t nrules = 0, added = 0;
        unsigned window = 0;
        int64_t after = 0, now = dm_now_ms();
        int ret = expiry_rules(app, &rules, &nrules, &window);

        if (ret < 0 || nrules == 0)
                goto out;
        for (;;) {
                struct dm_domain_expiry *doms = NULL;
                size_t nd = 0;
                ret = dm_store_domain_expiring(app->store, now + (int64_t)window * DAY_MS, after,
                                               ALERT_EXPIRY_PAGE, &doms, &nd);
                if (ret < 0)
                        break;
                for (size_t i = 0; i < nd && ret == 0; i++) {
                        const struct dm_domain_expiry *e = &doms[i];
                        const int64_t dates[2] = {e->tls_expires_at, e->registration_expires_at};
                        const enum dm_alert_expiry_kind kinds[2] = {DM_ALERT_EXPIRY_TLS,
                                                                    DM_ALERT_EXPIRY_REGISTRATION};
                        after = e->id;
                        for (size_t k = 0; k < 2 && ret == 0; k++) {
                                for (size_t r = 0; r < nrules && ret == 0; r++) {
                                        struct dm_alert_delivery d;
                                        int c =
                                            dm_alert_expiry_check(&rules[r].spec, kinds[k], e->id,
                                                                  e->name, dates[k], now, &d);
                                        if (c <= 0) {
                                                ret = c;
                                                continue;
                                        }
                                        d.rule_id = rules[r].id;
                                        d.next_attempt_at = now + app->conf.alert_group_wait_ms;
                                        ret = dm_store_alert_delivery_add(app->store, &d, now,
                                                                          rules[r].quiet_ms);
                                        free(d.body);
                                        if (ret == 0) {
                                                added++;
                                                dm_log_info("alert",
                                                            "msg=\"expiry threshold crossed\" "
                                                            "rule=%" PRId64 " event=%s",
                                                            rules[r].id, d.event_key);
                                        } else if (ret == DM_EEXIST) {
                                                ret = 0; /* fired before */
                                        }
                                }
                        }
                }
                free(doms);
                if (ret < 0 || nd < ALERT_EXPIRY_PAGE)
                        break;
        }
out:
        for (size_t i = 0; i < nrules; i++)
                dm_alert_spec_done(&rules[i].spec);
        free(rules);
        if (ret < 0)
                dm_log_warn("alert", "msg=\"cannot check expiry dates; next time\" err=\"%s\"",
                            dm_strerror(ret));
        else if (added > 0)
                dm_log_debug("alert", "msg=\"expiry alerts recorded\" new=%zu", added);
        return ret;
}

/* ---- sending ---- */

static int alert_send_one(struct dm_alert_service *s, const struct dm_alert_rule *rule,
                          const struct dm_alert_message *m, char *err, size_t errlen)
{
        char msg_id[64];
        int ret;

        dm_alert_message_id(m, msg_id, sizeof(msg_id));
        switch (rule->channel) {
        case DM_ALERT_WEBHOOK: {
                int64_t now = dm_now_ms();
                char *body = dm_alert_render_webhook(m, now);
                if (!body)
                        return DM_ENOMEM;
                ret = dm_alert_send_webhook(&s->send, rule->target, rule->secret, msg_id,
                                            now / 1000, body, err, errlen);
                free(body);
                return ret;
        }
        case DM_ALERT_EMAIL: {
                char *subject = NULL, *text = NULL;
                ret = dm_alert_render_email(m, rule->name, &subject, &text);
                if (ret == 0)
                        ret = dm_alert_send_email(&s->send, rule->target, msg_id, subject, text,
                                                  err, errlen);
                free(subject);
                free(text);
                return ret;
        }
        case DM_ALERT_SMS: {
                char text[DM_ALERT_SMS_MAX + 1];
                dm_alert_render_sms(m, text, sizeof(text));
                return dm_alert_send_sms(&s->send, rule->target, text, err, errlen);
        }
        default:
                snprintf(err, errlen, "the rule has no channel");
                return DM_EINVAL;
        }
}

static bool alert_stopping(struct dm_alert_service *s)
{
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        return stop;
}

/* Lets go of a claimed delivery unsent, as it was: at a stop, so that another sender takes it
 * at once instead of after the lease. */
static void alert_release(struct dm_alert_service *s, const struct dm_alert_delivery *d)
{
        int f = dm_store_alert_delivery_finish(s->app->store, s->owner, d);
        if (f < 0 && f != DM_ENOENT)
                dm_log_warn("alert", "msg=\"cannot release a delivery\" id=%" PRId64 " err=\"%s\"",
                            d->id, dm_strerror(f));
}

/* Sends the claimed deliveries of one rule (items[0..n)) and records each outcome. */
static void alert_send_rule(struct dm_alert_service *s, struct dm_alert_delivery *items, size_t n)
{
        struct dm_app *app = s->app;
        struct dm_alert_rule rule;
        const struct dm_alert_delivery **order = calloc(n, sizeof(*order));
        struct dm_alert_message *msgs = calloc(n, sizeof(*msgs));
        int ret;

        if (!order || !msgs)
                goto out;
        ret = dm_store_alert_rule_get(app->store, items[0].rule_id, &rule);
        if (ret < 0) {
                if (ret != DM_ENOENT) /* a deleted rule's deliveries went with it */
                        dm_log_warn("alert",
                                    "msg=\"cannot read a rule\" rule=%" PRId64 " err=\"%s\"",
                                    items[0].rule_id, dm_strerror(ret));
                goto out;
        }
        size_t nmsgs = dm_alert_plan(items, n, (size_t)app->conf.alert_digest_min, order, msgs);
        for (size_t i = 0; i < nmsgs; i++) {
                char err[DM_ALERT_ERROR_MAX] = "";
                if (alert_stopping(s)) {
                        for (size_t k = 0; k < msgs[i].n; k++)
                                alert_release(s, msgs[i].items[k]);
                        continue;
                }
                ret = alert_send_one(s, &rule, &msgs[i], err, sizeof(err));
                if (ret < 0 && !err[0])
                        snprintf(err, sizeof(err), "%s", dm_strerror(ret));
                int64_t now = dm_now_ms();
                uint32_t rnd = rnd32();
                for (size_t k = 0; k < msgs[i].n; k++) {
                        struct dm_alert_delivery *d = (struct dm_alert_delivery *)msgs[i].items[k];
                        dm_alert_delivery_outcome(d, ret == 0, err, now,
                                                  app->conf.alert_retry_min_ms,
                                                  (unsigned)app->conf.alert_max_attempts, rnd);
                        int f = dm_store_alert_delivery_finish(app->store, s->owner, d);
                        if (f < 0 && f != DM_ENOENT)
                                dm_log_warn("alert",
                                            "msg=\"cannot record a delivery\" id=%" PRId64
                                            " err=\"%s\"",
                                            d->id, dm_strerror(f));
                }
                char q[DM_ALERT_ERROR_MAX + 8], mid[64];
                dm_alert_message_id(&msgs[i], mid, sizeof(mid));
                if (ret == 0)
                        dm_log_info("alert",
                                    "msg=\"alert sent\" rule=%" PRId64 " channel=%s message=%s "
                                    "deliveries=%zu digest=%d",
                                    rule.id, dm_alert_channel_name(rule.channel), mid, msgs[i].n,
                                    msgs[i].digest ? 1 : 0);
                else
                        dm_log_warn("alert",
                                    "msg=\"alert not sent\" rule=%" PRId64 " channel=%s "
                                    "message=%s attempt=%u status=%s err=%s",
                                    rule.id, dm_alert_channel_name(rule.channel), mid,
                                    msgs[i].items[0]->attempts,
                                    dm_alert_status_name(msgs[i].items[0]->status),
                                    dm_log_quote(q, sizeof(q), err));
        }
        dm_alert_rule_done(&rule);
out:
        free(order);
        free(msgs);
}

/* One round: claim what is due, send it rule by rule. Returns how many were claimed. */
static size_t alert_round(struct dm_alert_service *s)
{
        struct dm_alert_delivery *items = NULL;
        size_t n = 0;
        int ret = dm_store_alert_delivery_claim(s->app->store, s->owner, ALERT_LEASE_MS,
                                                ALERT_CLAIM_BATCH, dm_now_ms(), &items, &n);
        if (ret < 0) {
                dm_log_warn("alert", "msg=\"cannot claim due alerts\" err=\"%s\"",
                            dm_strerror(ret));
                return 0;
        }
        for (size_t i = 0; i < n;) {
                size_t j = i + 1;
                while (j < n && items[j].rule_id == items[i].rule_id)
                        j++;
                alert_send_rule(s, &items[i], j - i);
                i = j;
        }
        dm_alert_deliveries_free(items, n);
        return n;
}

static void *alert_sender_main(void *arg)
{
        struct dm_alert_service *s = arg;

        int64_t expiry_due = 0; /* monotonic ms; 0: at once */

        pthread_mutex_lock(&s->mu);
        while (!s->stop) {
                pthread_mutex_unlock(&s->mu);
                if (dm_mono_ms() >= expiry_due) {
                        (void)alert_expiry_round(s); /* failures are logged, tried next time */
                        expiry_due = dm_mono_ms() + s->app->conf.alert_expiry_interval_ms;
                }
                size_t n = alert_round(s);
                pthread_mutex_lock(&s->mu);
                if (s->stop || n == ALERT_CLAIM_BATCH)
                        continue; /* a full batch: more may be due now */
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_nsec += ALERT_POLL_MS * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&s->cond, &s->mu, &ts);
        }
        pthread_mutex_unlock(&s->mu);
        return NULL;
}

/* ---- start, stop ---- */

int dm_alert_service_start(struct dm_app *app, struct dm_alert_service **ret_service)
{
        struct dm_alert_service *s = calloc(1, sizeof(*s));
        pthread_condattr_t ca;
        int ret;

        if (!s)
                return DM_ENOMEM;
        s->app = app;
        s->owner = (int64_t)(((uint64_t)rnd32() << 31 ^ (uint64_t)rnd32()) & INT64_MAX);
        if (s->owner == 0)
                s->owner = 1;
        s->send = (struct dm_alert_send_opts){
            .allow_private = app->conf.allow_private_targets != 0,
            .timeout_ms = ALERT_SEND_TIMEOUT_MS,
            .smtp_url = app->conf.smtp_url,
            .smtp_from = app->conf.smtp_from,
            .smtp_user = app->conf.smtp_user,
            .smtp_password = app->conf.smtp_password,
            .sms_url = app->conf.sms_url,
            .sms_user = app->conf.sms_user,
            .sms_password = app->conf.sms_password,
            .sms_from = app->conf.sms_from,
        };
        pthread_mutex_init(&s->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cond, &ca);
        pthread_condattr_destroy(&ca);

        ret = dm_alert_send_init();
        for (size_t i = 0; ret == 0 && alert_patterns[i]; i++)
                ret = dm_bus_declare(app->bus, ALERT_QUEUE, alert_patterns[i]);
        if (ret == 0)
                ret = dm_bus_consume(app->bus, ALERT_QUEUE, ALERT_PREFETCH, alert_on_message, s);
        if (ret < 0) {
                dm_log_error("alert", "msg=\"cannot subscribe to events\" queue=%s err=\"%s\"",
                             ALERT_QUEUE, dm_strerror(ret));
                goto fail;
        }
        s->consuming = true;
        if (pthread_create(&s->sender, NULL, alert_sender_main, s) != 0) {
                ret = DM_EAGAIN;
                goto fail;
        }
        pthread_setname_np(s->sender, "alert-send");
        dm_log_info("alert", "msg=\"alert service started\" queue=%s email=%s sms=%s", ALERT_QUEUE,
                    app->conf.smtp_url ? "on" : "off", app->conf.sms_url ? "on" : "off");
        *ret_service = s;
        return 0;
fail:
        if (s->consuming)
                dm_bus_cancel(app->bus, ALERT_QUEUE, alert_on_message, s);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return ret;
}

void dm_alert_service_stop(struct dm_alert_service *s)
{
        if (!s)
                return;
        /* Events not yet matched stay on the queue (in process: in the outbox, whose relay
         * deletes an event only once this consumer has acked it); deliveries not yet sent
         * stay in the store. */
        if (s->consuming)
                dm_bus_cancel(s->app->bus, ALERT_QUEUE, alert_on_message, s);
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->sender, NULL);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->mu);
        dm_log_info("alert", "msg=\"stopped\"");
        free(s);
}
