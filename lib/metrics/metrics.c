/* The metrics registry and its text writer. Series live in a per-family list that only
 * grows: a reader walks it under the family's lock, an updater touches only the atomics of
 * a series it already holds, so counting never waits for a scrape. Doubles (gauges, sums)
 * are kept as their bit patterns in 64-bit atomics. */
#include "dm/metrics.h"

#include "dm/error.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dm_metric_series {
        struct dm_metric_series *next;
        struct dm_metric *family;
        char *values[DM_METRIC_LABELS_MAX];
        atomic_uint_fast64_t count;    /* counter value, histogram count */
        atomic_uint_fast64_t bits;     /* gauge value, histogram sum: a double's bits */
        atomic_uint_fast64_t *buckets; /* histogram: per bucket (not cumulative), +Inf last */
};

struct dm_metric {
        struct dm_metric *next;
        const char *name;
        const char *help;
        enum dm_metric_type type;
        const char *labels[DM_METRIC_LABELS_MAX];
        size_t nlabels;
        double bounds[DM_METRIC_BUCKETS_MAX];
        size_t nbounds;
        dm_metric_gauge_fn fn;
        void *fn_arg;
        pthread_mutex_t mu;
        struct dm_metric_series *head, *tail; /* under mu */
        size_t nseries;                       /* under mu */
};

struct dm_metrics {
        struct dm_metric *head, *tail;
};

static uint64_t metric_bits(double v)
{
        uint64_t u;
        memcpy(&u, &v, sizeof(u));
        return u;
}

static double metric_double(uint64_t u)
{
        double v;
        memcpy(&v, &u, sizeof(v));
        return v;
}

int dm_metrics_new(struct dm_metrics **ret_metrics)
{
        struct dm_metrics *m = calloc(1, sizeof(*m));
        if (!m)
                return DM_ENOMEM;
        *ret_metrics = m;
        return 0;
}

static void series_free(struct dm_metric_series *s)
{
        for (size_t i = 0; i < DM_METRIC_LABELS_MAX; i++)
                free(s->values[i]);
        free(s->buckets);
        free(s);
}

void dm_metrics_free(struct dm_metrics *m)
{
        if (!m)
                return;
        struct dm_metric *f = m->head;
        while (f) {
                struct dm_metric *fnext = f->next;
                struct dm_metric_series *s = f->head;
                while (s) {
                        struct dm_metric_series *snext = s->next;
                        series_free(s);
                        s = snext;
                }
                pthread_mutex_destroy(&f->mu);
                free(f);
                f = fnext;
        }
        free(m);
}

static bool name_ok(const char *s, bool colon)
{
        if (!s || !*s)
                return false;
        for (const char *p = s; *p; p++) {
                char c = *p;
                bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                             (colon && c == ':');
                if (!alpha && (p == s || c < '0' || c > '9'))
                        return false;
        }
        return true;
}

static struct dm_metric_series *series_new(struct dm_metric *f, const char *const *values)
{
        struct dm_metric_series *s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->family = f;
        for (size_t i = 0; i < f->nlabels; i++) {
                const char *v = values && values[i] ? values[i] : "";
                s->values[i] = strndup(v, DM_METRIC_LABEL_VALUE_MAX);
                if (!s->values[i])
                        goto fail;
        }
        if (f->type == DM_METRIC_HISTOGRAM) {
                s->buckets = calloc(f->nbounds + 1, sizeof(*s->buckets));
                if (!s->buckets)
                        goto fail;
                for (size_t i = 0; i <= f->nbounds; i++)
                        atomic_init(&s->buckets[i], 0);
        }
        atomic_init(&s->count, 0);
        atomic_init(&s->bits, metric_bits(0.0));
        return s;
fail:
        series_free(s);
        return NULL;
}

static int family_add(struct dm_metrics *m, const char *name, const char *help,
                      enum dm_metric_type type, const char *const *labels, const double *bounds,
                      size_t nbounds, struct dm_metric **ret_family)
{
        if (!m || !name_ok(name, true) || !help)
                return DM_EINVAL;
        for (struct dm_metric *f = m->head; f; f = f->next) {
                if (strcmp(f->name, name) == 0)
                        return DM_EINVAL;
        }
        size_t nlabels = 0;
        while (labels && labels[nlabels]) {
                const char *l = labels[nlabels];
                if (nlabels == DM_METRIC_LABELS_MAX || !name_ok(l, false) ||
                    strncmp(l, "__", 2) == 0 || (type == DM_METRIC_HISTOGRAM && !strcmp(l, "le")))
                        return DM_EINVAL;
                for (size_t j = 0; j < nlabels; j++) {
                        if (strcmp(labels[j], l) == 0)
                                return DM_EINVAL;
                }
                nlabels++;
        }
        if (type == DM_METRIC_HISTOGRAM) {
                if (nbounds == 0 || nbounds > DM_METRIC_BUCKETS_MAX)
                        return DM_EINVAL;
                for (size_t i = 0; i < nbounds; i++) {
                        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
                                return DM_EINVAL;
                }
        }
        struct dm_metric *f = calloc(1, sizeof(*f));
        if (!f)
                return DM_ENOMEM;
        f->name = name;
        f->help = help;
        f->type = type;
        f->nlabels = nlabels;
        for (size_t i = 0; i < nlabels; i++)
                f->labels[i] = labels[i];
        f->nbounds = nbounds;
        for (size_t i = 0; i < nbounds; i++)
                f->bounds[i] = bounds[i];
        pthread_mutex_init(&f->mu, NULL);
        if (nlabels == 0) {
                f->head = f->tail = series_new(f, NULL);
                if (!f->head) {
                        pthread_mutex_destroy(&f->mu);
                        free(f);
                        return DM_ENOMEM;
                }
                f->nseries = 1;
        }
        if (m->tail)
                m->tail->next = f;
        else
                m->head = f;
        m->tail = f;
        if (ret_family)
                *ret_family = f;
        return 0;
}

int dm_metrics_counter(struct dm_metrics *m, const char *name, const char *help,
                       const char *const *labels, struct dm_metric **ret_family)
{
        return family_add(m, name, help, DM_METRIC_COUNTER, labels, NULL, 0, ret_family);
}

int dm_metrics_gauge(struct dm_metrics *m, const char *name, const char *help,
                     const char *const *labels, struct dm_metric **ret_family)
{
        return family_add(m, name, help, DM_METRIC_GAUGE, labels, NULL, 0, ret_family);
}

int dm_metrics_histogram(struct dm_metrics *m, const char *name, const char *help,
                         const char *const *labels, const double *bounds, size_t nbounds,
                         struct dm_metric **ret_family)
{
        return family_add(m, name, help, DM_METRIC_HISTOGRAM, labels, bounds, nbounds, ret_family);
}

int dm_metrics_gauge_fn(struct dm_metrics *m, const char *name, const char *help,
                        dm_metric_gauge_fn fn, void *arg)
{
        struct dm_metric *f = NULL;
        if (!fn)
                return DM_EINVAL;
        int r = family_add(m, name, help, DM_METRIC_GAUGE, NULL, NULL, 0, &f);
        if (r == 0) {
                f->fn = fn;
                f->fn_arg = arg;
        }
        return r;
}

static bool series_matches(const struct dm_metric_series *s, const char *const *values, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                const char *v = values && values[i] ? values[i] : "";
                if (strncmp(s->values[i], v, DM_METRIC_LABEL_VALUE_MAX) != 0)
                        return false;
        }
        return true;
}

struct dm_metric_series *dm_metric_series(struct dm_metric *f, const char *const *values)
{
        struct dm_metric_series *s;
        if (!f)
                return NULL;
        pthread_mutex_lock(&f->mu);
        for (s = f->head; s; s = s->next) {
                if (series_matches(s, values, f->nlabels))
                        goto out;
        }
        if (f->nseries >= DM_METRIC_SERIES_MAX)
                goto out;
        s = series_new(f, values);
        if (!s)
                goto out;
        if (f->tail)
                f->tail->next = s;
        else
                f->head = s;
        f->tail = s;
        f->nseries++;
out:
        pthread_mutex_unlock(&f->mu);
        return s;
}

void dm_metric_inc(struct dm_metric_series *s, uint64_t n)
{
        if (s)
                atomic_fetch_add_explicit(&s->count, n, memory_order_relaxed);
}

void dm_metric_set(struct dm_metric_series *s, double v)
{
        if (s)
                atomic_store_explicit(&s->bits, metric_bits(v), memory_order_relaxed);
}

static void bits_add(atomic_uint_fast64_t *a, double delta)
{
        uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(a, &old,
                                                      metric_bits(metric_double(old) + delta),
                                                      memory_order_relaxed, memory_order_relaxed))
                ;
}

void dm_metric_add(struct dm_metric_series *s, double delta)
{
        if (s)
                bits_add(&s->bits, delta);
}

void dm_metric_observe(struct dm_metric_series *s, double v)
{
        if (!s || !s->buckets || isnan(v))
                return;
        const struct dm_metric *f = s->family;
        size_t i = 0;
        while (i < f->nbounds && v > f->bounds[i])
                i++;
        atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
        bits_add(&s->bits, v);
}

double dm_metric_value(const struct dm_metric_series *s)
{
        if (!s)
                return 0;
        const struct dm_metric *f = s->family;
        if (f->type == DM_METRIC_GAUGE)
                return metric_double(atomic_load_explicit(&s->bits, memory_order_relaxed));
        if (f->type == DM_METRIC_HISTOGRAM) {
                uint64_t n = 0;
                for (size_t i = 0; i <= f->nbounds; i++)
                        n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
                return (double)n;
        }
        return (double)atomic_load_explicit(&s->count, memory_order_relaxed);
}

/* ---- the text format ---- */

const char *dm_metric_format_value(double v, char *buf, size_t size)
{
        if (isnan(v))
                snprintf(buf, size, "NaN");
        else if (isinf(v))
                snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        else if (v == floor(v) && fabs(v) < 1e15)
                snprintf(buf, size, "%.0f", v);
        else {
                /* The shortest %g that reads back as the same double. */
                for (int prec = 1; prec <= 17; prec++) {
                        snprintf(buf, size, "%.*g", prec, v);
                        if (strtod(buf, NULL) == v)
                                break;
                }
        }
        return buf;
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static int write_escaped(struct dm_buf *out, const char *s, bool quote)
{
        int r = 0;
        for (const char *p = s; *p && r == 0; p++) {
                if (*p == '\\')
                        r = dm_buf_add(out, "\\\\", 2);
                else if (*p == '\n')
                        r = dm_buf_add(out, "\\n", 2);
                else if (quote && *p == '"')
                        r = dm_buf_add(out, "\\\"", 2);
                else
                        r = dm_buf_addc(out, *p);
        }
        return r;
}

/* name{labels[,le="bound"]} value\n */
static int write_sample(struct dm_buf *out, const struct dm_metric *f, const char *suffix,
                        const struct dm_metric_series *s, const char *le, const char *value)
{
        int r = dm_buf_addf(out, "%s%s", f->name, suffix);
        size_t n = s ? f->nlabels : 0;
        if (r == 0 && (n > 0 || le))
                r = dm_buf_addc(out, '{');
        for (size_t i = 0; i < n && r == 0; i++) {
                r = dm_buf_addf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
                if (r == 0)
                        r = write_escaped(out, s->values[i], true);
                if (r == 0)
                        r = dm_buf_addc(out, '"');
        }
        if (r == 0 && le)
                r = dm_buf_addf(out, "%sle=\"%s\"", n ? "," : "", le);
        if (r == 0 && (n > 0 || le))
                r = dm_buf_addc(out, '}');
        if (r == 0)
                r = dm_buf_addf(out, " %s\n", value);
        return r;
}

static int write_histogram(struct dm_buf *out, const struct dm_metric *f,
                           const struct dm_metric_series *s)
{
        char le[32], val[32];
        uint64_t cum = 0;
        int r = 0;
        /* The sum is read first: an observation racing the write may then show in the
         * buckets and not the sum, never the other way round. _count is the +Inf bucket,
         * so the two always agree. */
        double sum = metric_double(atomic_load_explicit(&s->bits, memory_order_relaxed));
        for (size_t i = 0; i <= f->nbounds && r == 0; i++) {
                cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
                snprintf(val, sizeof(val), "%llu", (unsigned long long)cum);
                if (i < f->nbounds)
                        dm_metric_format_value(f->bounds[i], le, sizeof(le));
                else
                        snprintf(le, sizeof(le), "+Inf");
                r = write_sample(out, f, "_bucket", s, le, val);
        }
        if (r == 0)
                r = write_sample(out, f, "_sum", s, NULL,
                                 dm_metric_format_value(sum, val, sizeof(val)));
        snprintf(val, sizeof(val), "%llu", (unsigned long long)cum);
        if (r == 0)
                r = write_sample(out, f, "_count", s, NULL, val);
        return r;
}

static const char *type_name(enum dm_metric_type t)
{
        switch (t) {
        case DM_METRIC_COUNTER:
                return "counter";
        case DM_METRIC_GAUGE:
                return "gauge";
        case DM_METRIC_HISTOGRAM:
                return "histogram";
        }
        return "untyped";
}

static int write_family(struct dm_buf *out, struct dm_metric *f)
{
        char val[32];
        int r = dm_buf_addf(out, "# HELP %s ", f->name);
        if (r == 0)
                r = write_escaped(out, f->help, false);
        if (r == 0)
                r = dm_buf_addf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
        if (r < 0)
                return r;
        if (f->fn) {
                double v = f->fn(f->fn_arg);
                if (isnan(v))
                        return 0;
                return write_sample(out, f, "", NULL, NULL,
                                    dm_metric_format_value(v, val, sizeof(val)));
        }
        pthread_mutex_lock(&f->mu);
        for (const struct dm_metric_series *s = f->head; s && r == 0; s = s->next) {
                if (f->type == DM_METRIC_HISTOGRAM) {
                        r = write_histogram(out, f, s);
                } else if (f->type == DM_METRIC_GAUGE) {
                        r = write_sample(
                            out, f, "", s, NULL,
                            dm_metric_format_value(dm_metric_value(s), val, sizeof(val)));
                } else {
                        snprintf(val, sizeof(val), "%llu",
                                 (unsigned long long)atomic_load_explicit(&s->count,
                                                                          memory_order_relaxed));
                        r = write_sample(out, f, "", s, NULL, val);
                }
        }
        pthread_mutex_unlock(&f->mu);
        return r;
}

int dm_metrics_write(struct dm_metrics *m, struct dm_buf *out)
{
        for (struct dm_metric *f = m ? m->head : NULL; f; f = f->next) {
                int r = write_family(out, f);
                if (r < 0)
                        return r;
        }
        return 0;
}
