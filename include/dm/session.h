/* Browser sessions of the web UI: an API key is exchanged once for a cookie, signed with a
 * key derived from SECRET_KEY (HMAC-SHA256), that carries the key's scope and points at a
 * row of the store's sessions table. Signing out deletes the row, so the old cookie is
 * refused however well it is signed.
 *
 * Cookie value: "v1.<token>.<key_id>.<scope>.<expires_ms>.<mac>", token 64 hex digits (256
 * random bits), mac the HMAC-SHA256 (hex) of everything before its dot. The store keeps
 * only SHA-256(token), so a copy of the table opens no session.
 *
 * Every function here is thread-safe; none keeps state between calls. */
#ifndef DM_SESSION_H
#define DM_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm/store.h"

#define DM_SESSION_COOKIE "dm_session"             /* cookie name */
#define DM_SESSION_VALUE_MAX 256                   /* buffer that holds any cookie value and NUL */
#define DM_SESSION_SET_COOKIE_MAX 400              /* buffer for a whole Set-Cookie value */
#define DM_SESSION_TTL_MS (12 * 3600 * 1000)       /* a session lasts 12 hours */
#define DM_SESSION_SECRET_SETTING "session_secret" /* store setting used without SECRET_KEY */

/* The signing key. Derived, never SECRET_KEY itself, so that other uses of the secret
 * (webhook signatures, ...) never share a key with the cookies. */
struct dm_session_secret {
        unsigned char key[32];
};

/* What a well-signed cookie says (before the store is asked). */
struct dm_session_claims {
        char token[65]; /* 64 hex digits */
        char key_id[32];
        enum dm_scope scope;
        int64_t expires_at; /* unix ms */
};

/* Derives the signing key from a secret of any length (`len` bytes). Returns 0 or DM_EINVAL
 * (empty secret). */
int dm_session_secret_derive(const void *secret, size_t len, struct dm_session_secret *ret_secret);

/* The key to sign with: from `configured` (SECRET_KEY) when it is set and not empty; else
 * from a random secret kept in the store under DM_SESSION_SECRET_SETTING, made by the first
 * process that needs it, so that sessions survive a restart and every process of one
 * database agrees. *ret_generated (NULL-able) tells whether the store's secret was used.
 * Returns 0, DM_EIO (no randomness), or a store error. */
int dm_session_secret_load(struct dm_store *st, const char *configured,
                           struct dm_session_secret *ret_secret, bool *ret_generated);

/* Opens a session for `key` (an active key just checked) lasting DM_SESSION_TTL_MS from
 * `now`: stores it and writes the cookie value into value_out (DM_SESSION_VALUE_MAX bytes).
 * Returns 0, DM_EINVAL (key without key_id or scope), DM_EIO (no randomness), or a store
 * error. */
int dm_session_open(struct dm_store *st, const struct dm_session_secret *secret,
                    const struct dm_api_key *key, int64_t now, char *value_out,
                    struct dm_session *ret_session);

/* Checks a cookie value's form, signature and expiry, without the store. Returns 0 and
 * fills *ret_claims, or DM_EACCES for anything else (one answer for every reason). */
int dm_session_claims_check(const struct dm_session_secret *secret, const char *value, int64_t now,
                            struct dm_session_claims *ret_claims);

/* Checks a cookie value fully: dm_session_claims_check, then the session must be in the
 * store, unexpired, for the same key and scope, and the key must still be active. Returns 0
 * with the session (its scope the lesser of the session's and the key's now) and, when
 * ret_key is not NULL, the key; DM_EACCES; or a store error (the caller answers 503). */
int dm_session_verify(struct dm_store *st, const struct dm_session_secret *secret,
                      const char *value, int64_t now, struct dm_session *ret_session,
                      struct dm_api_key *ret_key);

/* Ends the session of a well-signed cookie value. Returns 0, DM_EACCES (not a valid
 * cookie), DM_ENOENT (already ended), or a store error. */
int dm_session_close(struct dm_store *st, const struct dm_session_secret *secret, const char *value,
                     int64_t now);

/* Finds the DM_SESSION_COOKIE value in a Cookie request header (RFC 6265 section 5.4:
 * "a=b; c=d"). Copies it into out (`size` bytes, NUL-terminated). Returns 0, DM_ENOENT
 * (absent, or the header is NULL), DM_E2BIG (does not fit). When the cookie is given more
 * than once, the first wins (the one with the longest path, as browsers order them). */
int dm_session_cookie_find(const char *header, char *out, size_t size);

/* Writes a Set-Cookie value into out (DM_SESSION_SET_COOKIE_MAX bytes): the session cookie
 * with `value` for `max_age_s` seconds, or, with value NULL, one that removes it. Always
 * Path=/, HttpOnly and SameSite=Strict; Secure when `secure`. Returns 0 or DM_E2BIG. */
int dm_session_set_cookie(const char *value, int64_t max_age_s, bool secure, char *out,
                          size_t size);

/* Whether a request authenticated by the cookie may go on, given its method and headers
 * (each NULL when absent). Reads (GET, HEAD, OPTIONS) always may. Writes need an Origin
 * whose host[:port] is the request's Host, with scheme http or https; without Origin,
 * Sec-Fetch-Site must say same-origin. Anything else (another site, "null", neither
 * header) returns DM_EPERM; 0 otherwise. */
int dm_session_origin_check(const char *method, const char *origin, const char *host,
                            const char *sec_fetch_site);

#endif
