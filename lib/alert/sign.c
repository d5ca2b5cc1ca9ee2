/* Standard Webhooks signing: HMAC-SHA256 over "<id>.<timestamp>.<body>" with the secret's
 * bytes (the base64 after "whsec_"), sent as "v1,<base64>". */
#include "dm/alert.h"

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "dm/error.h"

#define SECRET_BYTES 24
#define SECRET_DECODED_MAX 96

int dm_alert_secret_new(char *buf, size_t size)
{
        unsigned char raw[SECRET_BYTES];
        char b64[4 * SECRET_BYTES / 3 + 4];

        if (size < 6 + sizeof(b64))
                return DM_E2BIG;
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
                return DM_EIO;
        EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
        snprintf(buf, size, "whsec_%s", b64);
        return 0;
}

/* Decodes standard base64 with padding; returns the byte count or -1. */
static int b64_decode(const char *in, unsigned char *out, size_t size)
{
        size_t n = strlen(in);
        if (n == 0 || n % 4 != 0 || n / 4 * 3 > size)
                return -1;
        int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
        if (len < 0)
                return -1;
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        if (in[n - 1] == '=')
                len--;
        if (in[n - 2] == '=')
                len--;
        return len;
}

int dm_alert_sign(const char *secret, const char *msg_id, int64_t timestamp, const char *body,
                  size_t len, char *buf, size_t size)
{
        unsigned char key[SECRET_DECODED_MAX], mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        char head[256], b64[64];

        if (!secret || strncmp(secret, "whsec_", 6) != 0)
                return DM_EINVAL;
        int klen = b64_decode(secret + 6, key, sizeof(key));
        if (klen <= 0)
                return DM_EINVAL;
        int hn = snprintf(head, sizeof(head), "%s.%lld.", msg_id, (long long)timestamp);
        if (hn < 0 || (size_t)hn >= sizeof(head))
                return DM_E2BIG;

        EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *mctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                               OSSL_PARAM_construct_end()};
        size_t outl = 0;
        int ret = DM_ENOMEM;
        if (!mctx || !EVP_MAC_init(mctx, key, (size_t)klen, params) ||
            !EVP_MAC_update(mctx, (const unsigned char *)head, (size_t)hn) ||
            !EVP_MAC_update(mctx, (const unsigned char *)body, len) ||
            !EVP_MAC_final(mctx, mac, &outl, sizeof(mac)))
                goto out;
        maclen = (unsigned int)outl;
        EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
        ret = snprintf(buf, size, "v1,%s", b64) < (int)size ? 0 : DM_E2BIG;
out:
        EVP_MAC_CTX_free(mctx);
        EVP_MAC_free(hmac);
        OPENSSL_cleanse(key, sizeof(key));
        return ret;
}
