/* Browser sessions: signed cookies backed by the store's sessions table. See dm/session.h
 * and docs/internals/ui.md. */
#include "dm/session.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "dm/error.h"
#include "dm/hex.h"

#define VERSION "v1"
#define TOKEN_BYTES 32
#define TOKEN_HEX (2 * TOKEN_BYTES)
#define MAC_HEX 64
#define DERIVE_LABEL "domainmon session cookie v1"

int dm_session_secret_derive(const void *secret, size_t len, struct dm_session_secret *ret_secret)
{
        unsigned int outlen = 0;

        if (!secret || len == 0 || !ret_secret || len > 0x7fffffff)
                return DM_EINVAL;
        if (!HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)DERIVE_LABEL,
                  strlen(DERIVE_LABEL), ret_secret->key, &outlen) ||
            outlen != sizeof(ret_secret->key))
                return DM_EIO;
        return 0;
}

int dm_session_secret_load(struct dm_store *st, const char *configured,
                           struct dm_session_secret *ret_secret, bool *ret_generated)
{
        unsigned char raw[32];
        char fresh[2 * sizeof(raw) + 1], stored[256];
        int ret;

        if (!ret_secret)
                return DM_EINVAL;
        if (configured && *configured) {
                ret = dm_session_secret_derive(configured, strlen(configured), ret_secret);
                if (ret == 0 && ret_generated)
                        *ret_generated = false;
                return ret;
        }
        if (RAND_bytes(raw, sizeof(raw)) != 1)
                return DM_EIO;
        dm_hex_encode(raw, sizeof(raw), fresh);
        OPENSSL_cleanse(raw, sizeof(raw));
        /* Only the first process's value is kept; every later one reads it back. */
        ret = dm_store_setting_init(st, DM_SESSION_SECRET_SETTING, fresh, stored, sizeof(stored));
        OPENSSL_cleanse(fresh, sizeof(fresh));
        if (ret == 0)
                ret = dm_session_secret_derive(stored, strlen(stored), ret_secret);
        OPENSSL_cleanse(stored, sizeof(stored));
        if (ret == 0 && ret_generated)
                *ret_generated = true;
        return ret;
}

static int mac_hex(const struct dm_session_secret *secret, const char *data, size_t len,
                   char out[MAC_HEX + 1])
{
        unsigned char mac[32];
        unsigned int maclen = 0;

        if (!HMAC(EVP_sha256(), secret->key, sizeof(secret->key), (const unsigned char *)data, len,
                  mac, &maclen) ||
            maclen != sizeof(mac))
                return DM_EIO;
        dm_hex_encode(mac, sizeof(mac), out);
        return 0;
}

static void token_id(const char *token, char out[DM_SESSION_ID_HEX + 1])
{
        unsigned char h[SHA256_DIGEST_LENGTH];

        SHA256((const unsigned char *)token, strlen(token), h);
        dm_hex_encode(h, sizeof(h), out);
}

static bool is_lower_hex(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

/* Key ids are generated as lower-case hex, but any [0-9a-z] is accepted here: the store is
 * the judge of which exist. */
static bool is_key_id(const char *s, size_t n)
{
        if (n == 0 || n >= sizeof(((struct dm_session_claims *)0)->key_id))
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
                        return false;
        }
        return true;
}

int dm_session_open(struct dm_store *st, const struct dm_session_secret *secret,
                    const struct dm_api_key *key, int64_t now, char *value_out,
                    struct dm_session *ret_session)
{
        unsigned char raw[TOKEN_BYTES];
        char token[TOKEN_HEX + 1], mac[MAC_HEX + 1], value[DM_SESSION_VALUE_MAX];
        struct dm_session s = {0};
        int ret, n;

        if (!st || !secret || !key || !value_out || !is_key_id(key->key_id, strlen(key->key_id)) ||
            key->scope < DM_SCOPE_READ || key->scope > DM_SCOPE_ADMIN)
                return DM_EINVAL;
        if (RAND_bytes(raw, sizeof(raw)) != 1)
                return DM_EIO;
        dm_hex_encode(raw, sizeof(raw), token);
        s.scope = key->scope;
        s.created_at = now;
        s.expires_at = now + DM_SESSION_TTL_MS;
        memcpy(s.key_id, key->key_id, strlen(key->key_id) + 1);
        token_id(token, s.id);
        n = snprintf(value, sizeof(value), VERSION ".%s.%s.%s.%lld", token, s.key_id,
                     dm_scope_name(s.scope), (long long)s.expires_at);
        if (n < 0 || (size_t)n + 1 + MAC_HEX >= sizeof(value))
                return DM_E2BIG;
        ret = mac_hex(secret, value, (size_t)n, mac);
        if (ret < 0)
                return ret;
        ret = dm_store_session_insert(st, &s);
        if (ret < 0)
                return ret;
        memcpy(value_out, value, (size_t)n);
        value_out[n] = '.';
        memcpy(value_out + n + 1, mac, MAC_HEX + 1);
        if (ret_session)
                *ret_session = s;
        return 0;
}

/* Splits "v1.token.key_id.scope.expires.mac" into its six fields. */
static int split(const char *value, const char *field[6], size_t flen[6])
{
        const char *p = value;
        for (int i = 0; i < 6; i++) {
                const char *dot = strchr(p, '.');
                if (i < 5 && !dot)
                        return DM_EACCES;
                if (i == 5 && dot)
                        return DM_EACCES;
                field[i] = p;
                flen[i] = dot ? (size_t)(dot - p) : strlen(p);
                p = dot ? dot + 1 : p + flen[i];
        }
        return 0;
}

int dm_session_claims_check(const struct dm_session_secret *secret, const char *value, int64_t now,
                            struct dm_session_claims *ret_claims)
{
        const char *f[6];
        size_t fl[6];
        char mac[MAC_HEX + 1], scope[16];
        struct dm_session_claims c = {0};
        int64_t exp = 0;

        if (!secret || !value || !ret_claims || strlen(value) >= DM_SESSION_VALUE_MAX)
                return DM_EACCES;
        if (split(value, f, fl) < 0)
                return DM_EACCES;
        if (fl[0] != strlen(VERSION) || memcmp(f[0], VERSION, fl[0]) != 0)
                return DM_EACCES;
        if (fl[5] != MAC_HEX || !is_lower_hex(f[5], MAC_HEX))
                return DM_EACCES;
        /* The signature first: nothing unsigned is read further. */
        if (mac_hex(secret, value, (size_t)(f[5] - 1 - value), mac) < 0 ||
            CRYPTO_memcmp(mac, f[5], MAC_HEX) != 0)
                return DM_EACCES;
        if (fl[1] != TOKEN_HEX || !is_lower_hex(f[1], TOKEN_HEX))
                return DM_EACCES;
        if (!is_key_id(f[2], fl[2]) || fl[3] == 0 || fl[3] >= sizeof(scope))
                return DM_EACCES;
        if (fl[4] == 0 || fl[4] > 18)
                return DM_EACCES;
        for (size_t i = 0; i < fl[4]; i++) {
                if (f[4][i] < '0' || f[4][i] > '9')
                        return DM_EACCES;
                exp = exp * 10 + (f[4][i] - '0');
        }
        memcpy(scope, f[3], fl[3]);
        scope[fl[3]] = '\0';
        if (dm_scope_parse(scope, &c.scope) < 0 || c.scope < DM_SCOPE_READ)
                return DM_EACCES;
        if (exp <= now)
                return DM_EACCES;
        memcpy(c.token, f[1], TOKEN_HEX);
        c.token[TOKEN_HEX] = '\0';
        memcpy(c.key_id, f[2], fl[2]);
        c.key_id[fl[2]] = '\0';
        c.expires_at = exp;
        *ret_claims = c;
        return 0;
}

int dm_session_verify(struct dm_store *st, const struct dm_session_secret *secret,
                      const char *value, int64_t now, struct dm_session *ret_session,
                      struct dm_api_key *ret_key)
{
        struct dm_session_claims c;
        struct dm_session s;
        struct dm_api_key k;
        char id[DM_SESSION_ID_HEX + 1];
        int ret;

        if (!st || !ret_session)
                return DM_EINVAL;
        if (dm_session_claims_check(secret, value, now, &c) < 0)
                return DM_EACCES;
        token_id(c.token, id);
        ret = dm_store_session_get(st, id, &s);
        if (ret == DM_ENOENT)
                return DM_EACCES;
        if (ret < 0)
                return ret;
        if (s.expires_at <= now || strcmp(s.key_id, c.key_id) != 0 || s.scope != c.scope ||
            s.expires_at != c.expires_at)
                return DM_EACCES;
        ret = dm_store_key_get(st, c.key_id, &k);
        if (ret == DM_ENOENT)
                return DM_EACCES;
        if (ret < 0)
                return ret;
        if (k.revoked_at != 0 || k.scope < DM_SCOPE_READ)
                return DM_EACCES;
        /* A key's scope is fixed today; should that change, the session never outranks it. */
        if (k.scope < s.scope)
                s.scope = k.scope;
        *ret_session = s;
        if (ret_key)
                *ret_key = k;
        return 0;
}

int dm_session_close(struct dm_store *st, const struct dm_session_secret *secret, const char *value,
                     int64_t now)
{
        struct dm_session_claims c;
        char id[DM_SESSION_ID_HEX + 1];

        if (!st)
                return DM_EINVAL;
        if (dm_session_claims_check(secret, value, now, &c) < 0)
                return DM_EACCES;
        token_id(c.token, id);
        return dm_store_session_delete(st, id);
}

int dm_session_cookie_find(const char *header, char *out, size_t size)
{
        const size_t nlen = strlen(DM_SESSION_COOKIE);
        const char *p = header;

        if (!header || !out || size == 0)
                return DM_ENOENT;
        while (*p) {
                while (*p == ' ' || *p == '\t' || *p == ';')
                        p++;
                const char *end = strchr(p, ';');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                const char *eq = memchr(p, '=', len);
                if (eq) {
                        size_t klen = (size_t)(eq - p);
                        while (klen > 0 && (p[klen - 1] == ' ' || p[klen - 1] == '\t'))
                                klen--;
                        if (klen == nlen && memcmp(p, DM_SESSION_COOKIE, nlen) == 0) {
                                const char *v = eq + 1;
                                size_t vlen = len - (size_t)(v - p);
                                while (vlen > 0 && (*v == ' ' || *v == '\t')) {
                                        v++;
                                        vlen--;
                                }
                                while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                                        vlen--;
                                if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
                                        v++;
                                        vlen -= 2;
                                }
                                if (vlen >= size)
                                        return DM_E2BIG;
                                memcpy(out, v, vlen);
                                out[vlen] = '\0';
                                return 0;
                        }
                }
                p += len;
        }
        return DM_ENOENT;
}

int dm_session_set_cookie(const char *value, int64_t max_age_s, bool secure, char *out, size_t size)
{
        int n;

        if (!out || size == 0)
                return DM_E2BIG;
        if (value)
                n = snprintf(out, size, "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s",
                             DM_SESSION_COOKIE, value, (long long)(max_age_s > 0 ? max_age_s : 0),
                             secure ? "; Secure" : "");
        else
                n = snprintf(out, size, "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s",
                             DM_SESSION_COOKIE, secure ? "; Secure" : "");
        if (n < 0 || (size_t)n >= size)
                return DM_E2BIG;
        return 0;
}

int dm_session_origin_check(const char *method, const char *origin, const char *host,
                            const char *sec_fetch_site)
{
        if (method && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
                       strcmp(method, "OPTIONS") == 0))
                return 0;
        if (!origin)
                return sec_fetch_site && strcmp(sec_fetch_site, "same-origin") == 0 ? 0 : DM_EPERM;
        if (!host || !*host)
                return DM_EPERM;
        const char *rest;
        if (strncasecmp(origin, "http://", 7) == 0)
                rest = origin + 7;
        else if (strncasecmp(origin, "https://", 8) == 0)
                rest = origin + 8;
        else
                return DM_EPERM; /* "null", another scheme */
        /* An Origin is scheme://host[:port] and nothing more (RFC 6454 section 6.1). */
        if (strcasecmp(rest, host) != 0 || strpbrk(rest, "/?#@") != NULL)
                return DM_EPERM;
        return 0;
}
