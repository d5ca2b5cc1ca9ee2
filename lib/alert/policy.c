/* Alert policy: retry schedule, which addresses are off limits, how claimed deliveries are
 * grouped into messages, and when expiry and failing-check alerts fire. */
#include "dm/alert.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dm/error.h"
#include "dm/json.h"
#include "dm/time.h"

#define DAY_MS (86400LL * 1000)

int64_t dm_alert_backoff_ms(unsigned attempts, int64_t retry_min_ms, uint32_t rnd)
{
        int64_t d = retry_min_ms > 0 ? retry_min_ms : 1;
        for (unsigned i = 1; i < attempts && d < DM_ALERT_BACKOFF_MAX_MS; i++)
                d *= 2;
        if (d > DM_ALERT_BACKOFF_MAX_MS)
                d = DM_ALERT_BACKOFF_MAX_MS;
        /* Jitter only adds: a retry never comes sooner than the schedule says, and senders
         * that failed together spread out instead of hitting a receiver at once again. */
        int64_t jitter = d / 2 > 0 ? (int64_t)(rnd % (uint64_t)(d / 2 + 1)) : 0;
        return d + jitter;
}

void dm_alert_delivery_outcome(struct dm_alert_delivery *d, bool sent, const char *error,
                               int64_t now, int64_t retry_min_ms, unsigned max_attempts,
                               uint32_t rnd)
{
        d->attempts++;
        if (sent) {
                d->status = DM_ALERT_DELIVERED;
                d->delivered_at = now;
                d->last_error[0] = '\0';
                return;
        }
        snprintf(d->last_error, sizeof(d->last_error), "%s", error && error[0] ? error : "failed");
        if (d->attempts >= max_attempts) {
                d->status = DM_ALERT_FAILED;
                return;
        }
        d->status = DM_ALERT_PENDING;
        d->next_attempt_at = now + dm_alert_backoff_ms(d->attempts, retry_min_ms, rnd);
}

/* ---- addresses ---- */

static bool v4_private(uint32_t a) /* host byte order */
{
        return (a >> 24) == 0 ||               /* 0/8 "this network" */
               (a >> 24) == 10 ||              /* 10/8 */
               (a >> 24) == 127 ||             /* loopback */
               (a >> 16) == 0xa9fe ||          /* 169.254/16 link-local */
               (a >> 20) == 0xac1 ||           /* 172.16/12 */
               (a >> 16) == 0xc0a8 ||          /* 192.168/16 */
               (a >> 22) == (100u << 2 | 1) || /* 100.64/10 shared (CGNAT) */
               (a >> 28) >= 0xe;               /* multicast, reserved, broadcast */
}

static bool v6_private(const struct in6_addr *a)
{
        const uint8_t *b = a->s6_addr;
        static const uint8_t zero[16];
        if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
                uint32_t v4 =
                    (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
                return v4_private(v4);
        }
        return memcmp(b, zero, 16) == 0 || IN6_IS_ADDR_LOOPBACK(a) ||
               (b[0] & 0xfe) == 0xfc ||                   /* fc00::/7 unique local */
               (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || /* fe80::/10 link-local */
               (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) || /* fec0::/10 old site-local */
               b[0] == 0xff;                              /* multicast */
}

bool dm_alert_addr_private(const struct sockaddr *sa)
{
        if (!sa)
                return true;
        if (sa->sa_family == AF_INET)
                return v4_private(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
        if (sa->sa_family == AF_INET6)
                return v6_private(&((const struct sockaddr_in6 *)sa)->sin6_addr);
        return true; /* unix sockets and the like are never a receiver on the internet */
}

bool dm_alert_host_private(const char *host)
{
        char buf[64];
        struct in_addr a4;
        struct in6_addr a6;
        size_t n;

        if (!host)
                return true;
        n = strlen(host);
        if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0 ||
            (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0))
                return true;
        /* "[::1]" as URLs write it. */
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
                memcpy(buf, host + 1, n - 2);
                buf[n - 2] = '\0';
                host = buf;
        }
        /* inet_aton, not inet_pton: resolvers take "127.1" and "0x7f000001" as addresses
         * too, and so would the connection. */
        if (inet_aton(host, &a4) == 1)
                return v4_private(ntohl(a4.s_addr));
        if (inet_pton(AF_INET6, host, &a6) == 1)
                return v6_private(&a6);
        return false;
}

/* ---- grouping ---- */

size_t dm_alert_plan(const struct dm_alert_delivery *items, size_t n, size_t digest_min,
                     const struct dm_alert_delivery **order, struct dm_alert_message *ret_msgs)
{
        size_t ndomains = 0, k = 0, nmsgs = 0;

        if (n == 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = strcmp(items[j].domain, items[i].domain) == 0;
                ndomains += !seen;
        }
        if (ndomains > digest_min) {
                for (size_t i = 0; i < n; i++)
                        order[i] = &items[i];
                ret_msgs[0] = (struct dm_alert_message){.items = order, .n = n, .digest = true};
                return 1;
        }
        /* One message per domain, its deliveries in order: a quadratic pass, over at most
         * digest_min domains. */
        for (size_t i = 0; i < n; i++) {
                bool first = true;
                for (size_t j = 0; j < i && first; j++)
                        first = strcmp(items[j].domain, items[i].domain) != 0;
                if (!first)
                        continue;
                size_t start = k;
                for (size_t j = i; j < n; j++) {
                        if (strcmp(items[j].domain, items[i].domain) == 0)
                                order[k++] = &items[j];
                }
                ret_msgs[nmsgs++] =
                    (struct dm_alert_message){.items = &order[start], .n = k - start};
        }
        return nmsgs;
}

void dm_alert_message_id(const struct dm_alert_message *m, char *buf, size_t size)
{
        int64_t first = m->items[0]->id;
        for (size_t i = 1; i < m->n; i++) {
                if (m->items[i]->id < first)
                        first = m->items[i]->id;
        }
        snprintf(buf, size, "msg_%lld_%lld", (long long)m->items[0]->rule_id, (long long)first);
}

/* ---- thresholds ---- */

unsigned dm_alert_expiry_threshold(const unsigned *thresholds, size_t n, int64_t expires_at,
                                   int64_t now, int64_t *ret_days_left)
{
        if (expires_at <= 0 || n == 0)
                return 0;
        int64_t left = expires_at - now;
        /* Days left, rounded up: 6 days and 1 hour left has not crossed the 6-day mark. */
        int64_t days = left <= 0 ? 0 : (left + DAY_MS - 1) / DAY_MS;
        unsigned crossed = 0;
        for (size_t i = 0; i < n; i++) {
                if ((int64_t)thresholds[i] >= days)
                        crossed = thresholds[i]; /* descending: ends on the nearest */
        }
        if (crossed && ret_days_left)
                *ret_days_left = days;
        return crossed;
}

const char *dm_alert_expiry_routing_key(enum dm_alert_expiry_kind kind)
{
        return kind == DM_ALERT_EXPIRY_REGISTRATION ? "registration.expiring" : "tls.expiring";
}

int dm_alert_expiry_event(enum dm_alert_expiry_kind kind, int64_t domain_id, const char *domain,
                          int64_t expires_at, int64_t now, unsigned threshold,
                          struct dm_alert_delivery *ret_delivery)
{
        char id[96], at[DM_RFC3339_LEN];
        const char *rk = dm_alert_expiry_routing_key(kind);
        int64_t left = expires_at - now;
        int64_t days = left <= 0 ? 0 : (left + DAY_MS - 1) / DAY_MS;

        if (!domain || !domain[0] || strlen(domain) > DM_NAME_MAX || expires_at <= 0 ||
            threshold == 0)
                return DM_EINVAL;
        /* The id names what fired: the domain, the expiry date it fired for and the threshold.
         * The same decision taken again, by this process or another, is the same key. */
        snprintf(id, sizeof(id), "%" PRId64 "-%" PRId64 "-%u", domain_id, expires_at / 1000,
                 threshold);
        dm_time_format(expires_at, at);
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:I, s:i}", "id", id, "domain", domain, "kind",
                      kind == DM_ALERT_EXPIRY_REGISTRATION ? "registration" : "tls", "expires_at",
                      at, "days_left", (json_int_t)days, "threshold", (int)threshold);
        char *body = o ? dm_json_dump(o, NULL) : NULL;
        json_decref(o);
        if (!body)
                return DM_ENOMEM;
        memset(ret_delivery, 0, sizeof(*ret_delivery));
        snprintf(ret_delivery->event_key, sizeof(ret_delivery->event_key), "%s:%s", rk, id);
        snprintf(ret_delivery->routing_key, sizeof(ret_delivery->routing_key), "%s", rk);
        snprintf(ret_delivery->domain, sizeof(ret_delivery->domain), "%s", domain);
        ret_delivery->body = body;
        return 0;
}

int dm_alert_expiry_check(const struct dm_alert_spec *spec, enum dm_alert_expiry_kind kind,
                          int64_t domain_id, const char *domain, int64_t expires_at, int64_t now,
                          struct dm_alert_delivery *ret_delivery)
{
        struct dm_alert_event_info ev = {0};
        const char *rk = dm_alert_expiry_routing_key(kind);

        if (expires_at <= 0 || !domain || strlen(domain) >= sizeof(ev.domain))
                return 0;
        snprintf(ev.domain, sizeof(ev.domain), "%s", domain);
        if (!dm_alert_spec_matches(spec, rk, &ev))
                return 0;
        unsigned t =
            dm_alert_expiry_threshold(spec->expiry_days, spec->nexpiry, expires_at, now, NULL);
        if (t == 0)
                return 0;
        int ret = dm_alert_expiry_event(kind, domain_id, domain, expires_at, now, t, ret_delivery);
        return ret < 0 ? ret : 1;
}

unsigned dm_alert_spec_expiry_window(const struct dm_alert_spec *spec)
{
        if (!(spec->events & (DM_ALERT_EV_TLS_EXPIRING | DM_ALERT_EV_REGISTRATION_EXPIRING)) ||
            spec->nexpiry == 0)
                return 0;
        return spec->expiry_days[0]; /* descending */
}

bool dm_alert_failing_fires(unsigned failing_scans, enum dm_alert_failing_state state,
                            unsigned failed_scans)
{
        if (state == DM_ALERT_FAILING)
                return failed_scans == failing_scans;
        if (state == DM_ALERT_RECOVERED)
                return failed_scans >= failing_scans;
        return false;
}
