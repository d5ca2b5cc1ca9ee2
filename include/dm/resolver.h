/* Event-driven stub resolver for monitoring: many queries in flight on one thread, an
 * adaptive in-flight window per server, a short first retry that backs off, a pool of UDP
 * sockets (several source ports), EDNS0, TCP when an answer is truncated, an optional
 * queries-per-second cap. One struct dm_resolver belongs to one thread (its event loop);
 * run as many as there are cores. */
#ifndef DM_RESOLVER_H
#define DM_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dm/rrtype.h"

#define DM_RESOLVER_MAX_SERVERS 8

struct dm_resolver;

struct dm_resolver_opts {
        struct sockaddr_storage servers[DM_RESOLVER_MAX_SERVERS];
        socklen_t server_lens[DM_RESOLVER_MAX_SERVERS];
        size_t nservers;
        int timeout_ms;  /* overall budget per query across retries (DM_DNS_TIMEOUT) */
        int retries;     /* retransmissions after the first send (DM_DNS_RETRIES) */
        int concurrency; /* upper bound of queries in flight (DM_DNS_CONCURRENCY) */
        int qps;         /* 0: no cap */
        int nsockets;    /* UDP sockets (source ports); 0: a default */
};

/* The outcome of one query, canonicalized: values are presentation-format strings
 * (RFC 1035 5.1; names lower-cased and absolute), sorted by bytes, de-duplicated, for
 * records of the asked type owned by the name or, after a CNAME chain in the answer, by its
 * target. */
struct dm_dns_answer {
        enum dm_rr_status status; /* OK, NXDOMAIN, NODATA or ERROR */
        int err;                  /* ERROR: DM_ETIMEDOUT, DM_ESERVFAIL, DM_EREFUSED, ... */
        uint32_t ttl;             /* minimum TTL of the set (0 when empty) */
        bool authoritative;       /* the reply had AA set: its TTL is the zone's, not a
                                     cache's countdown */
        char **values;            /* owned by the resolver; valid during the callback */
        size_t nvalues;
};

typedef void (*dm_resolve_cb)(void *arg, const struct dm_dns_answer *answer);

/* Parses "ip[:port],[v6]:port,v6" into opts->servers. Port defaults to 53.
 * Returns 0 or DM_EINVAL with a reason in `err`. */
int dm_resolver_parse_servers(const char *list, char *err, size_t errlen,
                              struct dm_resolver_opts *opts);
/* Reads nameserver lines of a resolv.conf file into opts->servers (port 53). Entries with
 * a scope (fe80::1%eth0) or that do not parse are skipped; at most DM_RESOLVER_MAX_SERVERS.
 * Returns 0, DM_ENOENT (no file, or no usable nameserver), DM_EIO or a negative errno;
 * opts is untouched on error. */
int dm_resolver_servers_from_resolv_conf(const char *path, struct dm_resolver_opts *opts);

/* Needs at least one server, timeout_ms > 0, retries >= 0, concurrency >= 1, qps >= 0.
 * Limits applied silently: retries at most 20, nsockets at most 256 (per address family),
 * concurrency at most 16,384 per socket. Returns 0, DM_EINVAL, DM_ENOMEM or a socket error
 * (negative errno). */
int dm_resolver_new(const struct dm_resolver_opts *opts, struct dm_resolver **ret_resolver);
/* Cancels what is in flight without calling callbacks, closes sockets. NULL-safe. Not to
 * be called from inside a callback. */
void dm_resolver_free(struct dm_resolver *r);

/* Queues a lookup. It is sent when the window has room; `cb` is called exactly once, from
 * dm_resolver_run. `name` is an A-label name without trailing dot. Returns 0 or
 * DM_EINVAL/DM_ENOMEM (then cb is never called). A callback may queue further lookups. */
int dm_resolver_query(struct dm_resolver *r, const char *name, uint16_t type, dm_resolve_cb cb,
                      void *arg);

/* Waits up to timeout_ms for socket activity or timers, sends queued queries as the
 * window allows, and calls callbacks for finished queries. Returns the number finished or
 * a negative error. */
int dm_resolver_run(struct dm_resolver *r, int timeout_ms);

/* Queries queued or in flight. */
size_t dm_resolver_pending(const struct dm_resolver *r);

/* A file descriptor that becomes readable when dm_resolver_run has work (for embedding
 * in another loop). */
int dm_resolver_fd(const struct dm_resolver *r);

/* Counters since dm_resolver_new. sent: queries written (UDP and TCP, retransmissions
 * included); retransmits: UDP retransmissions; answers: replies accepted for a query;
 * timeouts: lookups given up as DM_ETIMEDOUT; tcp_fallbacks: truncated replies re-asked
 * over TCP; errors: lookups finished with status ERROR (timeouts included). */
struct dm_resolver_stats {
        uint64_t sent, retransmits, answers, timeouts, tcp_fallbacks, errors;
        int window;           /* current in-flight window (sum over servers) */
        double loss_rate;     /* UDP transmissions taken as lost over the last few seconds,
                                 0 .. 1 (the server losing most) */
        int64_t min_rtt_us;   /* smallest RTT of the last 10 s over servers; 0: none yet */
        uint64_t window_cuts; /* cuts of the window over servers, those taken back included */
};
void dm_resolver_get_stats(const struct dm_resolver *r, struct dm_resolver_stats *ret_stats);

#endif
