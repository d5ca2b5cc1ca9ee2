/* Canonical record sets, their differences, the per-domain fingerprint and the JSON form
 * they are stored in. Change detection compares canonical lists only, so answer order can
 * never look like a change; which TTLs enter the fingerprint is lib/dns/change.c's rule. */
#include "dm/rrset.h"

#include "dm/buf.h"
#include "dm/json.h"

#include "dm/error.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Bumped if the fingerprint's input ever changes, so old and new never compare equal by
 * accident. */
#define RRSET_FP_TAG "dm-fp-2"

static int rrset_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

void dm_rrset_canonicalize(char **values, size_t *n)
{
        size_t count = *n;
        if (count < 2)
                return;
        qsort(values, count, sizeof(*values), rrset_cmp);
        size_t o = 1;
        for (size_t i = 1; i < count; i++) {
                if (strcmp(values[i], values[o - 1]) == 0)
                        free(values[i]);
                else
                        values[o++] = values[i];
        }
        *n = o;
}

int dm_rrset_diff(char *const *before, size_t nbefore, char *const *after, size_t nafter,
                  struct dm_rrset_delta *ret_delta)
{
        struct dm_rrset_delta d = {0};

        /* One extra slot so an empty result still has an allocation to free. */
        d.added = malloc((nafter + 1) * sizeof(*d.added));
        d.removed = malloc((nbefore + 1) * sizeof(*d.removed));
        if (!d.added || !d.removed) {
                dm_rrset_delta_done(&d);
                return DM_ENOMEM;
        }
        /* Both inputs are sorted: one merge pass. */
        size_t i = 0, j = 0;
        while (i < nbefore || j < nafter) {
                int cmp;
                if (i == nbefore)
                        cmp = 1;
                else if (j == nafter)
                        cmp = -1;
                else
                        cmp = strcmp(before[i], after[j]);
                if (cmp < 0) {
                        d.removed[d.nremoved++] = before[i++];
                } else if (cmp > 0) {
                        d.added[d.nadded++] = after[j++];
                } else {
                        i++;
                        j++;
                }
        }
        *ret_delta = d;
        return 0;
}

void dm_rrset_delta_done(struct dm_rrset_delta *d)
{
        if (!d)
                return;
        free(d->added);
        free(d->removed);
        memset(d, 0, sizeof(*d));
}

int dm_fp_init(struct dm_fp *fp)
{
        memset(fp, 0, sizeof(*fp));
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
                return DM_ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(ctx, RRSET_FP_TAG, sizeof(RRSET_FP_TAG)) != 1) {
                EVP_MD_CTX_free(ctx);
                return DM_ENOMEM;
        }
        fp->ctx = ctx;
        return 0;
}

static int fp_update(struct dm_fp *fp, const void *p, size_t n)
{
        if (EVP_DigestUpdate(fp->ctx, p, n) != 1)
                return DM_ENOMEM;
        return 0;
}

static int fp_u32(struct dm_fp *fp, uint32_t v)
{
        uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        return fp_update(fp, b, sizeof(b));
}

int dm_fp_add(struct dm_fp *fp, uint16_t type, enum dm_rr_status status, int64_t ttl,
              char *const *values, size_t n)
{
        int ret = 0;

        if (fp->err)
                return fp->err;
        if (!fp->ctx || (uint32_t)type + 1 <= fp->last_type ||
            (ttl != DM_FP_NO_TTL && (ttl < 0 || ttl > (int64_t)UINT32_MAX))) {
                ret = DM_EINVAL;
                goto fail;
        }
        fp->last_type = (uint32_t)type + 1;
        /* Each field is length-framed, so no two different observations share an input. */
        uint8_t head[3] = {(uint8_t)(type >> 8), (uint8_t)type, (uint8_t)status};
        ret = fp_update(fp, head, sizeof(head));
        if (ret)
                goto fail;
        if (status == DM_RRS_ERROR)
                return 0;
        /* A flag before the TTL: a set with TTL 0 is not a set without one. */
        uint8_t has_ttl = ttl != DM_FP_NO_TTL;
        ret = fp_update(fp, &has_ttl, 1);
        if (ret == 0 && has_ttl)
                ret = fp_u32(fp, (uint32_t)ttl);
        if (ret)
                goto fail;
        for (size_t i = 1; i < n; i++) {
                if (strcmp(values[i - 1], values[i]) >= 0) {
                        ret = DM_EINVAL;
                        goto fail;
                }
        }
        ret = fp_u32(fp, (uint32_t)n);
        for (size_t i = 0; ret == 0 && i < n; i++) {
                size_t len = strlen(values[i]);
                ret = fp_u32(fp, (uint32_t)len);
                if (ret == 0)
                        ret = fp_update(fp, values[i], len);
        }
        if (ret)
                goto fail;
        return 0;

fail:
        /* Remembered: a fingerprint with a hole in it must not be used. */
        fp->err = ret;
        return ret;
}

int dm_fp_final(struct dm_fp *fp, uint8_t out[DM_FP_LEN])
{
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        int ret = fp->err;

        if (!fp->ctx)
                ret = DM_EINVAL;
        if (ret)
                goto out_ctx;
        if (EVP_DigestFinal_ex(fp->ctx, md, &mdlen) != 1 || mdlen < DM_FP_LEN) {
                ret = DM_ENOMEM;
                goto out_ctx;
        }
        bool zero = true;
        for (size_t i = 0; i < DM_FP_LEN; i++)
                zero = zero && md[i] == 0;
        /* All zero means "no state yet": never hand it out as a real observation. */
        if (zero)
                md[DM_FP_LEN - 1] = 1;
        memcpy(out, md, DM_FP_LEN);

out_ctx:
        dm_fp_done(fp);
        return ret;
}

void dm_fp_done(struct dm_fp *fp)
{
        if (!fp)
                return;
        EVP_MD_CTX_free(fp->ctx);
        fp->ctx = NULL;
}

int dm_rrset_values_to_json(char *const *values, size_t n, char **ret_json)
{
        struct dm_buf b;
        int r = 0;

        /* Presentation format is ASCII: anything else would not read back the same. */
        for (size_t i = 0; i < n; i++) {
                for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++) {
                        if (*p > 0x7f)
                                return DM_EINVAL;
                }
        }
        dm_buf_init(&b, DM_RRSET_JSON_MAX);
        r = dm_buf_addc(&b, '[');
        for (size_t i = 0; r == 0 && i < n; i++) {
                if (i)
                        r = dm_buf_addc(&b, ',');
                if (r == 0)
                        r = dm_json_buf_add_string(&b, values[i]);
        }
        if (r == 0)
                r = dm_buf_addc(&b, ']');
        char *json = r == 0 ? dm_buf_detach(&b) : NULL;
        dm_buf_done(&b);
        if (!json)
                return r < 0 ? r : DM_ENOMEM;
        *ret_json = json;
        return 0;
}

int dm_rrset_values_from_json(const char *json, char ***ret_values, size_t *ret_n)
{
        json_error_t jerr;
        char **values = NULL;
        size_t n = 0;
        int ret = DM_EPARSE;

        json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
        if (!root || !json_is_array(root))
                goto out_root;
        size_t count = json_array_size(root);
        if (count > 0) {
                values = calloc(count, sizeof(*values));
                if (!values) {
                        ret = DM_ENOMEM;
                        goto out_root;
                }
        }
        for (size_t i = 0; i < count; i++) {
                json_t *item = json_array_get(root, i);
                if (!json_is_string(item))
                        goto out_values;
                const char *s = json_string_value(item);
                size_t len = json_string_length(item);
                if (strlen(s) != len) /* an embedded NUL */
                        goto out_values;
                values[n] = strdup(s);
                if (!values[n]) {
                        ret = DM_ENOMEM;
                        goto out_values;
                }
                n++;
        }
        json_decref(root);
        *ret_values = values;
        *ret_n = n;
        return 0;

out_values:
        dm_rrset_values_free(values, n);
out_root:
        json_decref(root);
        return ret;
}

void dm_rrset_values_free(char **values, size_t n)
{
        if (!values)
                return;
        for (size_t i = 0; i < n; i++)
                free(values[i]);
        free(values);
}
