/* Event-driven stub resolver for monitoring: many queries in flight on one thread, an
 * adaptive in-flight window per server, a short first retry that backs off, a pool of UDP
 * sockets on random ports renewed as they age, query names in random case (DNS 0x20), EDNS0
 * with a fallback for servers that refuse or drop it, TCP when an answer is truncated,
 * failover between servers (dead ones are marked down and probed), an optional
 * queries-per-second cap. A reply that is not an answer (a referral, a lame or
 * unproven empty reply) is an error, never an empty set. One struct dm_resolver belongs to
 * one thread (its event loop); run as many as there are cores.
 * docs/internals/dns-resolver.md gives every rule with its reason. */
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
        int nsockets;    /* UDP sockets (source ports) per address family; 0: 64. Fewer
                            when the process runs out of file descriptors (stats.sockets) */
        /* The servers are the zones' own (DM_DNS_AUTHORITATIVE): an authoritative empty
         * reply is NODATA even without an SOA in it. */
        bool authoritative_only;
};

/* The outcome of one query, canonicalized: values are presentation-format strings
 * (RFC 1035 5.1; names lower-cased and absolute), sorted by bytes, de-duplicated, for
 * records of the asked type owned by the name or, after a CNAME chain in the answer, by its
 * target. */
struct dm_dns_answer {
        enum dm_rr_status status; /* OK, NXDOMAIN, NODATA or ERROR */
        int err;                  /* ERROR: DM_ETIMEDOUT, DM_ESERVFAIL, DM_EREFUSED,
                                     DM_EREFERRAL, DM_ELAME, DM_ESERVERSDOWN, ... */
        uint32_t ttl;             /* minimum TTL of the set (0 when empty) */
        bool authoritative;       /* the reply had AA set: its TTL is the zone's, not a
                                     cache's countdown */
        char **values;            /* owned by the resolver; valid during the callback */
        size_t nvalues;
        /* ERROR: 1 + the index in opts.servers of the server asked last, so that the
         * failure can name it (dm_resolver_server_text); 0 when none was asked. */
        int server_plus1;
};

typedef void (*dm_resolve_cb)(void *arg, const struct dm_dns_answer *answer);

/* Parses "ip[:port],[v6]:port,v6" into opts->servers. Port defaults to 53.
 * Returns 0 or DM_EINVAL with a reason in `err`. */
int dm_resolver_parse_servers(const char *list, char *err, size_t errlen,
                              struct dm_resolver_opts *opts);
/* Writes server i of opts as "192.0.2.1:53" or "[2001:db8::1]:53" into buf (always
 * NUL-terminated when len > 0). Returns 0 or DM_EINVAL (no such server). */
int dm_resolver_server_text(const struct dm_resolver_opts *opts, size_t i, char *buf, size_t len);
/* Reads nameserver lines of a resolv.conf file into opts->servers (port 53). Entries with
 * a scope (fe80::1%eth0) or that do not parse are skipped; at most DM_RESOLVER_MAX_SERVERS.
 * Returns 0, DM_ENOENT (no file, or no usable nameserver), DM_EIO or a negative errno;
 * opts is untouched on error. */
int dm_resolver_servers_from_resolv_conf(const char *path, struct dm_resolver_opts *opts);

/* Needs at least one server, timeout_ms > 0, retries >= 0, concurrency >= 1, qps >= 0.
 * Limits applied silently: retries at most 20, nsockets at most 256 (per address family),
 * concurrency at most 16,384 per socket. Returns 0, DM_EINVAL, DM_ENOMEM or a socket error
 * (negative errno). While every server is marked down, lookups fail at once with
 * DM_ESERVERSDOWN (from dm_resolver_run, like every callback). */
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
 * timeouts: lookups given up as DM_ETIMEDOUT; tcp_fallbacks: truncated (TC) or oversized
 * replies re-asked over TCP; errors: lookups finished with status ERROR (timeouts
 * included).
 * Server state now, bit i for the i-th server of the options: down (marked down and
 * probed), no EDNS, no 0x20. Transitions, for the service to log: server_downs and
 * server_ups (marked down, seen again), edns_fallbacks and case_fallbacks (a server taken
 * off EDNS or 0x20; trial queries put it back, seen in the masks). */
struct dm_resolver_stats {
        uint64_t sent, retransmits, answers, timeouts, tcp_fallbacks, errors;
        int window;       /* current in-flight window (sum over servers) */
        int sockets;      /* UDP sockets taking queries (all families) */
        int servers_down; /* servers marked down now */
        uint32_t down_mask, no_edns_mask, no_case_mask;
        uint64_t server_downs, server_ups, edns_fallbacks, case_fallbacks;
        uint64_t probes;            /* queries sent to down servers to see them back */
        uint64_t down_fails;        /* lookups failed with DM_ESERVERSDOWN */
        uint64_t next_server;       /* SERVFAIL, REFUSED, referral or lame: asked elsewhere */
        uint64_t edns_retries;      /* FORMERR, NOTIMP or BADVERS to EDNS: asked without */
        uint64_t case_mismatches;   /* replies dropped for not echoing the name's case */
        uint64_t nxdomain_rechecks; /* NXDOMAIN to a mixed-case name, asked in lower case */
        uint64_t sockets_renewed;   /* UDP sockets replaced by one on a new port */
        double loss_rate;           /* UDP transmissions taken as lost over the last few seconds,
                                       0 .. 1 (the server losing most) */
        int64_t min_rtt_us;         /* smallest RTT of the last 10 s over servers; 0: none yet */
        uint64_t window_cuts;       /* cuts of the window over servers, those taken back included */
};
void dm_resolver_get_stats(const struct dm_resolver *r, struct dm_resolver_stats *ret_stats);

#endif
