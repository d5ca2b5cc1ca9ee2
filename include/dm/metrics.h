/* Metrics: a small registry of counters, gauges and histograms with labels, written out in
 * the Prometheus text exposition format 0.0.4 (GET /metrics).
 *
 * A family is registered once, at start-up, with its name, help text, type and label names;
 * a series is one set of label values of a family, made on first use by dm_metric_series and
 * kept until the registry is freed. Callers on hot paths look a series up once and keep the
 * pointer: updating a series is one atomic operation (a histogram: two, and a compare-and-
 * swap loop for its sum), never a lock.
 *
 *     struct dm_metric *scans;
 *     dm_metrics_counter(m, "dm_scans_total", "Scans finished.", (const char *[]){"check",
 *                        "result", NULL}, &scans);
 *     struct dm_metric_series *ok = dm_metric_series(scans, (const char *[]){"dns", "ok"});
 *     dm_metric_inc(ok, 1);
 *
 * Every update function takes NULL for the series and then does nothing, so that a series
 * that could not be made (out of memory, DM_METRIC_SERIES_MAX reached) costs a count, not
 * a failure.
 *
 * Thread-safety: registration (dm_metrics_counter and friends) from one thread before the
 * registry is shared; dm_metric_series, the updates and dm_metrics_write from any thread. */
#ifndef DM_METRICS_H
#define DM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dm/buf.h"

#define DM_METRIC_LABELS_MAX 4        /* label names per family */
#define DM_METRIC_BUCKETS_MAX 20      /* finite bucket bounds per histogram */
#define DM_METRIC_SERIES_MAX 2048     /* series per family; dm_metric_series gives NULL beyond */
#define DM_METRIC_LABEL_VALUE_MAX 256 /* longer label values are cut */

enum dm_metric_type { DM_METRIC_COUNTER, DM_METRIC_GAUGE, DM_METRIC_HISTOGRAM };

struct dm_metrics;
struct dm_metric;
struct dm_metric_series;

/* A gauge read when the metrics are written (a queue's depth, whether the store answers).
 * Called from dm_metrics_write's thread; returns the value, or NAN to leave the sample out
 * this time. */
typedef double (*dm_metric_gauge_fn)(void *arg);

int dm_metrics_new(struct dm_metrics **ret_metrics);
/* Frees every family and series. NULL-safe. */
void dm_metrics_free(struct dm_metrics *m);

/* Registers a family. `name` and `help` and the strings of `labels` (NULL-terminated, at
 * most DM_METRIC_LABELS_MAX; NULL: none) must outlive the registry (string literals). A
 * family without labels has its one series from the start, so it is written as 0 before
 * anything is counted. Returns 0; DM_EINVAL for a name or label name that is not
 * [a-zA-Z_:][a-zA-Z0-9_:]* (labels: no ':' and no "__" prefix, not "le" on a histogram),
 * a name already registered, or too many labels; DM_ENOMEM. */
int dm_metrics_counter(struct dm_metrics *m, const char *name, const char *help,
                       const char *const *labels, struct dm_metric **ret_family);
int dm_metrics_gauge(struct dm_metrics *m, const char *name, const char *help,
                     const char *const *labels, struct dm_metric **ret_family);
/* `bounds`: ascending finite upper bounds (1..DM_METRIC_BUCKETS_MAX, copied); the +Inf
 * bucket is implied. */
int dm_metrics_histogram(struct dm_metrics *m, const char *name, const char *help,
                         const char *const *labels, const double *bounds, size_t nbounds,
                         struct dm_metric **ret_family);
/* A gauge without labels whose value is fn(arg) at each write. */
int dm_metrics_gauge_fn(struct dm_metrics *m, const char *name, const char *help,
                        dm_metric_gauge_fn fn, void *arg);

/* The series of `family` for `values` (one per label name, in the family's order; NULL
 * stands for ""), made on first use (values are copied, cut at DM_METRIC_LABEL_VALUE_MAX).
 * NULL when family is NULL, on ENOMEM, or when the family holds DM_METRIC_SERIES_MAX series
 * already. The pointer stays valid until dm_metrics_free. */
struct dm_metric_series *dm_metric_series(struct dm_metric *family, const char *const *values);

/* Counter: adds n. */
void dm_metric_inc(struct dm_metric_series *s, uint64_t n);
/* Gauge: sets, or adds a (possibly negative) delta. */
void dm_metric_set(struct dm_metric_series *s, double v);
void dm_metric_add(struct dm_metric_series *s, double delta);
/* Histogram: one observation. */
void dm_metric_observe(struct dm_metric_series *s, double v);

/* Reads back a counter or gauge series (tests, logs); a histogram gives its count. */
double dm_metric_value(const struct dm_metric_series *s);

/* Appends every family, in registration order, to `out`: # HELP and # TYPE, then its
 * series in the order they were made; a histogram's buckets cumulative and ending in +Inf,
 * then _sum and _count. Returns 0, DM_E2BIG (out's cap) or DM_ENOMEM. */
int dm_metrics_write(struct dm_metrics *m, struct dm_buf *out);

/* The Content-Type of what dm_metrics_write produces. */
#define DM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Formats a sample value the way the format wants it: "+Inf", "-Inf", "NaN", integers
 * without a fraction, anything else in the shortest form that reads back exactly. Returns
 * buf. `size` >= 32. */
const char *dm_metric_format_value(double v, char *buf, size_t size);

#endif
