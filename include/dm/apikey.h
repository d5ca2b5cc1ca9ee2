/* API keys: "dmk_<key_id>_<secret>", key_id 12 hex digits (public, for lookup), secret 32
 * base32 characters (160 random bits). Only SHA-256 of the whole key is stored; a
 * presented key is checked by looking up key_id and comparing hashes in constant time. */
#ifndef DM_APIKEY_H
#define DM_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm/store.h"

#define DM_APIKEY_PREFIX "dmk_"
#define DM_APIKEY_LEN 64 /* buffer size that holds any key and its NUL */

/* Makes a new random key (OpenSSL RAND_bytes) and fills *ret_key (key_id, name, scope,
 * hash; not stored). The full key goes to key_out (DM_APIKEY_LEN bytes). */
int dm_apikey_generate(const char *name, enum dm_scope scope, char *key_out,
                       struct dm_api_key *ret_key);

/* Generates and stores a key. Returns 0, DM_EINVAL (empty or over-long name), store
 * errors. */
int dm_apikey_create(struct dm_store *st, const char *name, enum dm_scope scope, char *key_out,
                     struct dm_api_key *ret_key);

/* Generates and stores the first key: only when no key is active, so that processes
 * starting at once against one database make one between them. Returns 0 (made: key_out
 * and *ret_key filled), DM_EEXIST (an active key exists; nothing made), DM_EINVAL, store
 * errors. */
int dm_apikey_create_first(struct dm_store *st, const char *name, enum dm_scope scope,
                           char *key_out, struct dm_api_key *ret_key);

/* Checks a presented key. Returns 0 and the stored key, DM_EACCES when malformed, unknown,
 * wrong or revoked (one answer for all, so nothing is learned from it), or a store error. */
int dm_apikey_authenticate(struct dm_store *st, const char *presented, struct dm_api_key *ret_key);

#endif
