/* RFC 9224 bootstrap for domain names: which RDAP server serves which TLD. The file is
 * read once into a sorted table of (label, base URL) so that a lookup is a few binary
 * searches, one per suffix of the name. */
#include "dm/registration.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dm/error.h"

#define BS_MAX_ENTRIES 100000
#define BS_URL_MAX 512

struct bs_entry {
        char *label; /* lower case, no trailing dot */
        const char *url;
};

struct dm_rdap_bootstrap {
        struct bs_entry *entries;
        size_t n;
        char **urls; /* owned, one per service */
        size_t nurls;
        char publication[64];
};

void dm_rdap_bootstrap_free(struct dm_rdap_bootstrap *bs)
{
        if (!bs)
                return;
        for (size_t i = 0; i < bs->n; i++)
                free(bs->entries[i].label);
        for (size_t i = 0; i < bs->nurls; i++)
                free(bs->urls[i]);
        free(bs->entries);
        free(bs->urls);
        free(bs);
}

static bool ldh_label_list(const char *s)
{
        size_t label = 0, len = strlen(s);
        if (len == 0 || len > DM_NAME_MAX || s[0] == '.' || s[len - 1] == '.')
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c == '.') {
                        if (label == 0)
                                return false;
                        label = 0;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-'))
                        return false;
                if (++label > 63)
                        return false;
        }
        return true;
}

static bool url_ok(const char *u)
{
        size_t len = strlen(u);
        if (len >= BS_URL_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)u[i] <= ' ' || (unsigned char)u[i] >= 0x7f)
                        return false;
        if (strncasecmp(u, "https://", 8) == 0)
                return len > 8;
        if (strncasecmp(u, "http://", 7) == 0)
                return len > 7;
        return false;
}

static int cmp_entry(const void *a, const void *b)
{
        return strcmp(((const struct bs_entry *)a)->label, ((const struct bs_entry *)b)->label);
}

int dm_rdap_bootstrap_parse(const char *data, size_t len, char *err, size_t errlen,
                            struct dm_rdap_bootstrap **ret_bs)
{
        struct dm_rdap_bootstrap *bs = NULL;
        json_error_t jerr;
        json_t *doc;
        const json_t *services, *svc, *pub;
        size_t i, total = 0;
        int r;

        doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
                return dm_errorf(DM_EPARSE, err, errlen, "bootstrap file is not JSON (line %d: %s)",
                                 jerr.line, jerr.text);
        services = json_object_get(doc, "services");
        if (!json_is_object(doc) || !json_is_array(services)) {
                r = dm_errorf(DM_EINVAL, err, errlen, "bootstrap file has no \"services\" array");
                goto out;
        }
        json_array_foreach(services, i, svc)
        {
                const json_t *labels = json_array_get(svc, 0), *urls = json_array_get(svc, 1);
                if (!json_is_array(svc) || json_array_size(svc) != 2 || !json_is_array(labels) ||
                    !json_is_array(urls) || json_array_size(urls) == 0) {
                        r = dm_errorf(DM_EINVAL, err, errlen,
                                      "services[%zu] is not [[labels], [urls]]", i);
                        goto out;
                }
                total += json_array_size(labels);
        }
        if (total == 0 || total > BS_MAX_ENTRIES) {
                r = dm_errorf(DM_EINVAL, err, errlen, "bootstrap file lists %zu labels", total);
                goto out;
        }
        r = DM_ENOMEM;
        bs = calloc(1, sizeof(*bs));
        if (!bs)
                goto out;
        bs->entries = calloc(total, sizeof(*bs->entries));
        bs->urls = calloc(json_array_size(services), sizeof(*bs->urls));
        if (!bs->entries || !bs->urls)
                goto out;
        pub = json_object_get(doc, "publication");
        if (json_is_string(pub))
                dm_reg_text_clean(bs->publication, sizeof(bs->publication), json_string_value(pub),
                                  json_string_length(pub));
        json_array_foreach(services, i, svc)
        {
                const json_t *labels = json_array_get(svc, 0), *urls = json_array_get(svc, 1);
                const json_t *u, *l;
                const char *chosen = NULL;
                size_t j;

                json_array_foreach(urls, j, u)
                {
                        if (!json_is_string(u) || !url_ok(json_string_value(u))) {
                                r = dm_errorf(DM_EINVAL, err, errlen,
                                              "services[%zu]: URL %zu is not http(s)://", i, j);
                                goto out;
                        }
                        /* RFC 9224 section 3: prefer https when both are offered. */
                        if (!chosen || strncasecmp(json_string_value(u), "https://", 8) == 0)
                                if (!chosen || strncasecmp(chosen, "https://", 8) != 0)
                                        chosen = json_string_value(u);
                }
                size_t ul = strlen(chosen);
                char *url = malloc(ul + 2);
                if (!url) {
                        r = DM_ENOMEM;
                        goto out;
                }
                memcpy(url, chosen, ul + 1);
                if (url[ul - 1] != '/')
                        url[ul] = '/', url[ul + 1] = '\0';
                bs->urls[bs->nurls++] = url;
                json_array_foreach(labels, j, l)
                {
                        if (!json_is_string(l) || !ldh_label_list(json_string_value(l))) {
                                r = dm_errorf(DM_EINVAL, err, errlen,
                                              "services[%zu]: label %zu is not a domain label", i,
                                              j);
                                goto out;
                        }
                        char *label = strdup(json_string_value(l));
                        if (!label) {
                                r = DM_ENOMEM;
                                goto out;
                        }
                        for (char *p = label; *p; p++)
                                if (*p >= 'A' && *p <= 'Z')
                                        *p = (char)(*p + 32);
                        bs->entries[bs->n].label = label;
                        bs->entries[bs->n].url = url;
                        bs->n++;
                }
        }
        qsort(bs->entries, bs->n, sizeof(*bs->entries), cmp_entry);
        for (i = 1; i < bs->n; i++) {
                if (strcmp(bs->entries[i - 1].label, bs->entries[i].label) == 0) {
                        r = dm_errorf(DM_EINVAL, err, errlen, "label \"%s\" is listed twice",
                                      bs->entries[i].label);
                        goto out;
                }
        }
        *ret_bs = bs;
        bs = NULL;
        r = 0;
out:
        dm_rdap_bootstrap_free(bs);
        json_decref(doc);
        return r;
}

const char *dm_rdap_bootstrap_lookup(const struct dm_rdap_bootstrap *bs, const char *domain)
{
        char low[DM_NAME_MAX + 1];
        size_t len = strlen(domain);

        if (!bs || len == 0 || len > DM_NAME_MAX)
                return NULL;
        for (size_t i = 0; i <= len; i++)
                low[i] =
                    (char)((domain[i] >= 'A' && domain[i] <= 'Z') ? domain[i] + 32 : domain[i]);
        if (low[len - 1] == '.')
                low[--len] = '\0';
        /* Longest match first: the whole name, then each suffix after a dot. */
        for (const char *s = low; s; s = strchr(s, '.') ? strchr(s, '.') + 1 : NULL) {
                struct bs_entry key = {.label = (char *)s};
                const struct bs_entry *e =
                    bsearch(&key, bs->entries, bs->n, sizeof(*bs->entries), cmp_entry);
                if (e)
                        return e->url;
        }
        return NULL;
}

size_t dm_rdap_bootstrap_count(const struct dm_rdap_bootstrap *bs)
{
        return bs ? bs->n : 0;
}

const char *dm_rdap_bootstrap_publication(const struct dm_rdap_bootstrap *bs)
{
        return bs ? bs->publication : "";
}
