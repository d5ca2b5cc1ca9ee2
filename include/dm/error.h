/* One error space for the whole tree: negative, errno-compatible where errno has a word for
 * it, project codes below -1000. Functions return 0 (DM_OK) or one of these. */
#ifndef DM_ERROR_H
#define DM_ERROR_H

#include <errno.h>
#include <stddef.h>

#define DM_ERRNO_MAP(X)                                                                            \
        X(ENOMEM, -ENOMEM, "out of memory")                                                        \
        X(EINVAL, -EINVAL, "invalid argument")                                                     \
        X(ENOENT, -ENOENT, "not found")                                                            \
        X(EEXIST, -EEXIST, "already exists")                                                       \
        X(ERANGE, -ERANGE, "value out of range")                                                   \
        X(EIO, -EIO, "input/output error")                                                         \
        X(EAGAIN, -EAGAIN, "resource temporarily unavailable")                                     \
        X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                      \
        X(ENOTSUP, -ENOTSUP, "not supported")                                                      \
        X(EACCES, -EACCES, "permission denied")                                                    \
        X(EPERM, -EPERM, "operation not permitted")                                                \
        X(E2BIG, -E2BIG, "too large")                                                              \
        X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                       \
        X(ECANCELED, -ECANCELED, "canceled")                                                       \
        X(ENOSPC, -ENOSPC, "no space left")                                                        \
        X(ESTALE, -ESTALE, "stale: the connection it belonged to was lost")                        \
        X(EADDRINUSE, -EADDRINUSE, "address already in use")

#define DM_DOMAIN_MAP(X)                                                                           \
        X(ECONFLICT, -1001, "concurrent update")                                                   \
        X(EPARSE, -1002, "malformed input")                                                        \
        X(ESTORE, -1003, "store error")                                                            \
        X(EBADNAME, -1004, "invalid domain name")                                                  \
        X(ENOBACKEND, -1005, "backend not available in this build")                                \
        X(ECONFIG, -1006, "invalid configuration")                                                 \
        X(EMIGRATE, -1007, "database migration failed")                                            \
        X(EDNS, -1008, "DNS lookup failed")                                                        \
        X(ESERVFAIL, -1009, "DNS server failure (SERVFAIL)")                                       \
        X(EREFUSED, -1010, "DNS query refused")                                                    \
        X(EFORMERR, -1011, "DNS format error")                                                     \
        X(ETRUNC, -1012, "truncated")                                                              \
        X(EBUS, -1013, "message bus error")                                                        \
        X(ESHUTDOWN, -1014, "shutting down")                                                       \
        X(EREFERRAL, -1015, "DNS referral instead of an answer")                                   \
        X(ELAME, -1016, "lame DNS answer (empty, without authority or the zone's SOA)")            \
        X(ESERVERSDOWN, -1017, "every DNS server is down")                                         \
        X(ENOROUTE, -1018, "no queue is bound for the routing key")                                \
        X(EREJECTED, -1019, "the message bus refused the message")

enum dm_error {
        DM_OK = 0,
#define DM_ERROR_ENUM(name, value, text) DM_##name = (value),
        DM_ERRNO_MAP(DM_ERROR_ENUM) DM_DOMAIN_MAP(DM_ERROR_ENUM)
#undef DM_ERROR_ENUM
};

/* A static description of `err` (never NULL; unknown codes get a generic text). */
const char *dm_strerror(int err);

/* The code's symbolic name without prefix, e.g. "ENOENT"; "OK" for 0; NULL if unknown. */
const char *dm_errname(int err);

/* Writes a one-line reason into err (when err is not NULL and errlen > 0) and returns
 * `code`, so a failing path reads `return dm_errorf(DM_EINVAL, err, errlen, "...", ...);`. */
int dm_errorf(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
