/* API keys. The key_id part lets the store find the row without knowing the secret; the
 * secret never leaves this file except in the one string handed to whoever creates the
 * key. Every way a presented key can be bad gives the same DM_EACCES, and the hash is
 * computed and compared even for unknown ids, so the answer time says little more. */
#include "dm/apikey.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "dm/error.h"
#include "dm/hex.h"

#define KEY_ID_BYTES 6  /* 12 hex digits */
#define SECRET_BYTES 20 /* 160 bits, 32 base32 characters */
#define KEY_ID_CHARS (KEY_ID_BYTES * 2)
#define SECRET_CHARS (SECRET_BYTES * 8 / 5)
#define PREFIX_LEN (sizeof(DM_APIKEY_PREFIX) - 1)
#define KEY_CHARS (PREFIX_LEN + KEY_ID_CHARS + 1 + SECRET_CHARS)
#define CREATE_ATTEMPTS 4

_Static_assert(KEY_CHARS < DM_APIKEY_LEN, "key must fit DM_APIKEY_LEN");

static const char hex_digits[] = "0123456789abcdef";
static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static int sha256(const char *s, size_t len, uint8_t out[32])
{
        unsigned int n = 0;
        if (EVP_Digest(s, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
                return DM_EIO;
        return 0;
}

static bool name_ok(const char *name)
{
        size_t len = name ? strnlen(name, sizeof(((struct dm_api_key *)0)->name)) : 0;
        if (len == 0 || len >= sizeof(((struct dm_api_key *)0)->name))
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)name[i];
                if (c < 0x20 || c == 0x7f)
                        return false;
        }
        return true;
}

int dm_apikey_generate(const char *name, enum dm_scope scope, char *key_out,
                       struct dm_api_key *ret_key)
{
        uint8_t id[KEY_ID_BYTES], secret[SECRET_BYTES];
        char key[DM_APIKEY_LEN];
        struct dm_api_key k = {0};
        size_t o = 0;
        int ret;

        if (!name_ok(name) || scope < DM_SCOPE_READ || scope > DM_SCOPE_ADMIN)
                return DM_EINVAL;
        if (RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1) {
                ret = DM_EIO;
                goto out;
        }
        memcpy(key, DM_APIKEY_PREFIX, PREFIX_LEN);
        o = PREFIX_LEN;
        dm_hex_encode(id, sizeof(id), key + o);
        o += 2 * sizeof(id);
        key[o++] = '_';
        /* 20 bytes are exactly 32 groups of 5 bits: no padding. */
        for (size_t bit = 0; bit < SECRET_BYTES * 8; bit += 5) {
                unsigned v = 0;
                for (size_t b = bit; b < bit + 5; b++)
                        v = (v << 1) | ((secret[b / 8] >> (7 - b % 8)) & 1u);
                key[o++] = base32_alphabet[v];
        }
        key[o] = '\0';

        memcpy(k.key_id, key + PREFIX_LEN, KEY_ID_CHARS);
        k.key_id[KEY_ID_CHARS] = '\0';
        memcpy(k.name, name, strlen(name) + 1);
        k.scope = scope;
        ret = sha256(key, o, k.hash);
        if (ret < 0)
                goto out;
        memcpy(key_out, key, o + 1);
        *ret_key = k;
out:
        OPENSSL_cleanse(secret, sizeof(secret));
        OPENSSL_cleanse(key, sizeof(key));
        return ret;
}

int dm_apikey_create(struct dm_store *st, const char *name, enum dm_scope scope, char *key_out,
                     struct dm_api_key *ret_key)
{
        char key[DM_APIKEY_LEN];
        struct dm_api_key k;
        int ret = DM_EEXIST;

        /* A key_id collision (48 random bits) is unlikely but cheap to survive. */
        for (int i = 0; i < CREATE_ATTEMPTS && ret == DM_EEXIST; i++) {
                ret = dm_apikey_generate(name, scope, key, &k);
                if (ret < 0)
                        break;
                ret = dm_store_key_insert(st, &k);
        }
        if (ret == 0) {
                memcpy(key_out, key, strlen(key) + 1);
                *ret_key = k;
        }
        OPENSSL_cleanse(key, sizeof(key));
        return ret;
}

int dm_apikey_create_first(struct dm_store *st, const char *name, enum dm_scope scope,
                           char *key_out, struct dm_api_key *ret_key)
{
        char key[DM_APIKEY_LEN];
        struct dm_api_key k;
        int ret = DM_ECONFLICT;

        /* DM_ECONFLICT: the key_id is a revoked key's; another one will do. */
        for (int i = 0; i < CREATE_ATTEMPTS && ret == DM_ECONFLICT; i++) {
                ret = dm_apikey_generate(name, scope, key, &k);
                if (ret < 0)
                        break;
                ret = dm_store_key_insert_first(st, &k);
        }
        if (ret == 0) {
                memcpy(key_out, key, strlen(key) + 1);
                *ret_key = k;
        }
        OPENSSL_cleanse(key, sizeof(key));
        return ret;
}

static bool in_alphabet(const char *s, size_t n, const char *alphabet)
{
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '\0' || !strchr(alphabet, s[i]))
                        return false;
        }
        return true;
}

/* Shape check only: "dmk_" 12 hex "_" 32 base32, nothing more. */
static bool well_formed(const char *p, size_t len)
{
        return len == KEY_CHARS && memcmp(p, DM_APIKEY_PREFIX, PREFIX_LEN) == 0 &&
               in_alphabet(p + PREFIX_LEN, KEY_ID_CHARS, hex_digits) &&
               p[PREFIX_LEN + KEY_ID_CHARS] == '_' &&
               in_alphabet(p + PREFIX_LEN + KEY_ID_CHARS + 1, SECRET_CHARS, base32_alphabet);
}

int dm_apikey_authenticate(struct dm_store *st, const char *presented, struct dm_api_key *ret_key)
{
        char key_id[KEY_ID_CHARS + 1];
        uint8_t hash[32];
        struct dm_api_key k;
        int ret;

        if (!presented)
                return DM_EACCES;
        size_t len = strnlen(presented, DM_APIKEY_LEN);
        if (!well_formed(presented, len))
                return DM_EACCES;
        memcpy(key_id, presented + PREFIX_LEN, KEY_ID_CHARS);
        key_id[KEY_ID_CHARS] = '\0';

        ret = dm_store_key_get(st, key_id, &k);
        if (ret == DM_ENOENT) {
                /* Same work as for a known id. */
                memset(&k, 0, sizeof(k));
                ret = 0;
                k.revoked_at = -1;
        }
        if (ret < 0)
                return ret;
        ret = sha256(presented, len, hash);
        if (ret < 0)
                return ret;
        bool match = CRYPTO_memcmp(hash, k.hash, sizeof(hash)) == 0;
        if (!match || k.revoked_at != 0 || k.scope < DM_SCOPE_READ || k.scope > DM_SCOPE_ADMIN)
                return DM_EACCES;
        *ret_key = k;
        return 0;
}
