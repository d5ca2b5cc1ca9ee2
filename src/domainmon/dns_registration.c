/* Registration checks in the DNS service: workers claim due domains one at a time from the
 * store (the claim is the only coordination, so any number of dns-service processes can
 * run them), look each one up (lib/registration: RDAP or WHOIS, per-server limits) and
 * write the result with its change event in one transaction. */
#include "dns_int.h"

#include "dm/embed.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/regchange.h"
#include "dm/reglookup.h"
#include "dm/time.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REG_SVC "registration"
#define REG_IDLE_MS 1000     /* pause when nothing is due */
#define REG_RETRY_MS 5000    /* pause after a failed claim */
#define REG_RELOAD_MS 60000  /* how often the bootstrap file's mtime is looked at */
#define REG_MAX_WAIT_MS 5000 /* a rate-limit wait longer than this defers the domain */
#define REG_MAX_BACKOFF_MS 3600000
#define REG_WORKERS_MAX 64

struct dm_dns_reg {
        struct dm_dns_service *svc;
        pthread_rwlock_t lock; /* guards bs and mtime */
        struct dm_rdap_bootstrap *bs;
        int64_t mtime;
        int64_t checked_mono;
        struct dm_reg_limiter *limiter;
        pthread_t threads[REG_WORKERS_MAX];
        size_t nthreads;
};

const char *dm_dns_reg_bootstrap_path(const struct dm_conf *conf)
{
        struct stat st;
        if (conf->rdap_bootstrap)
                return conf->rdap_bootstrap;
        return stat(DM_RDAP_BOOTSTRAP_LOCAL, &st) == 0 ? DM_RDAP_BOOTSTRAP_LOCAL : NULL;
}

static int64_t file_mtime(const char *path)
{
        struct stat st;
        if (!path || stat(path, &st) != 0)
                return 0;
        return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

static int reg_load(const struct dm_conf *conf, struct dm_rdap_bootstrap **ret, int64_t *ret_mtime)
{
        char err[256];
        const char *path = dm_dns_reg_bootstrap_path(conf);
        char *data = NULL;
        size_t len = 0;
        int r;

        if (path) {
                int64_t mtime = file_mtime(path);
                r = dm_rdap_bootstrap_fetch(path, conf->registration_timeout_ms, &data, &len, err,
                                            sizeof(err));
                if (r == 0)
                        r = dm_rdap_bootstrap_parse(data, len, err, sizeof(err), ret);
                free(data);
                if (r < 0) {
                        char q[300];
                        dm_log_error(REG_SVC, "msg=\"cannot use the RDAP bootstrap file\" err=%s",
                                     dm_log_quote(q, sizeof(q), err));
                        return r;
                }
                *ret_mtime = mtime;
                return 0;
        }
        const struct dm_embed_file *f = dm_embed_find(dm_embed_rdap, "dns.json");
        if (!f)
                return DM_ENOENT;
        *ret_mtime = 0;
        return dm_rdap_bootstrap_parse((const char *)f->data, f->len, err, sizeof(err), ret);
}

/* A new bootstrap file (rdap-bootstrap update, or an edited DM_RDAP_BOOTSTRAP) is taken
 * without a restart; a bad one is logged and the one in use kept. */
static void reg_maybe_reload(struct dm_dns_reg *reg)
{
        const struct dm_conf *conf = &reg->svc->app->conf;
        int64_t now = dm_mono_ms();

        pthread_rwlock_wrlock(&reg->lock);
        if (now - reg->checked_mono < REG_RELOAD_MS) {
                pthread_rwlock_unlock(&reg->lock);
                return;
        }
        reg->checked_mono = now;
        int64_t mtime = file_mtime(dm_dns_reg_bootstrap_path(conf));
        if (mtime != reg->mtime) {
                struct dm_rdap_bootstrap *bs = NULL;
                int64_t m = 0;
                if (reg_load(conf, &bs, &m) == 0) {
                        dm_rdap_bootstrap_free(reg->bs);
                        reg->bs = bs;
                        dm_log_info(REG_SVC, "msg=\"RDAP bootstrap file loaded\" entries=%zu",
                                    dm_rdap_bootstrap_count(bs));
                }
                reg->mtime = mtime;
        }
        pthread_rwlock_unlock(&reg->lock);
}

static char *reg_event(const struct dm_reg_change *ch, void *arg)
{
        (void)arg;
        return dm_reg_change_event_json(ch);
}

/* Reads the stored state, builds the commit, writes it. One retry when another check of
 * the domain wrote meanwhile. */
static void reg_commit(struct dm_dns_reg *reg, const struct dm_reg_task *t,
                       const struct dm_reg_result *res)
{
        struct dm_dns_service *svc = reg->svc;
        char q[300];

        for (int attempt = 0; attempt < 2; attempt++) {
                struct dm_reg_state st = {0};
                struct dm_reg_commit c;
                struct dm_reg_commit_bufs owned;
                int64_t change_id = 0;
                int r = dm_store_reg_get(svc->store, t->domain_id, &st);
                if (r < 0 && r != DM_ENOENT) {
                        dm_log_warn(REG_SVC,
                                    "msg=\"cannot read registration state\" domain=%s "
                                    "err=\"%s\"",
                                    t->name, dm_strerror(r));
                        return;
                }
                r = dm_reg_commit_build(t->domain_id, dm_now_ms(), r == 0 ? &st : NULL, res, &c,
                                        &owned);
                if (r == 0)
                        r = dm_store_reg_commit(svc->store, &c, reg_event, NULL, &change_id);
                dm_reg_commit_bufs_done(&owned);
                dm_reg_state_done(&st);
                if (r == DM_ECONFLICT)
                        continue;
                if (r == DM_ENOENT)
                        return; /* deleted meanwhile */
                if (r < 0) {
                        dm_log_warn(REG_SVC,
                                    "msg=\"cannot write registration state\" domain=%s err=\"%s\"",
                                    t->name, dm_strerror(r));
                        return;
                }
                if (change_id) {
                        atomic_fetch_add(&svc->changes, 1);
                        dm_outbox_relay_kick(svc->app->relay);
                        dm_log_info(REG_SVC, "msg=\"registration changed\" domain=%s id=%" PRId64,
                                    t->name, change_id);
                }
                if (res->status != DM_REG_OK)
                        dm_log_debug(REG_SVC,
                                     "msg=\"registration check failed\" domain=%s "
                                     "status=%s reason=%s",
                                     t->name, dm_reg_status_name(res->status),
                                     dm_log_quote(q, sizeof(q), res->error));
                return;
        }
}

static void reg_check(struct dm_dns_reg *reg, const struct dm_reg_task *t)
{
        const struct dm_conf *conf = &reg->svc->app->conf;
        struct dm_reg_result res;

        reg_maybe_reload(reg);
        pthread_rwlock_rdlock(&reg->lock);
        struct dm_reg_lookup_conf lc = {
            .bootstrap = reg->bs,
            .whois_server = conf->whois_server,
            .whois_root = conf->whois_root,
            .timeout_ms = conf->registration_timeout_ms,
            .limiter = reg->limiter,
            .max_wait_ms = REG_MAX_WAIT_MS,
            .cancel = &reg->svc->stopping,
        };
        int r = dm_reg_lookup(&lc, t->name, &res);
        pthread_rwlock_unlock(&reg->lock);
        if (r == DM_EAGAIN) {
                /* The server asked for a pause: the domain waits for it, nothing recorded. */
                dm_store_reg_defer(reg->svc->store, t->domain_id, res.retry_at);
        } else if (r == DM_ECANCELED) {
                /* Stopping: the claim had moved the check a whole interval on; it is due
                 * again, for whichever process runs next. */
                dm_store_reg_defer(reg->svc->store, t->domain_id, dm_now_ms());
        } else if (r == 0) {
                reg_commit(reg, t, &res);
        } else {
                dm_log_warn(REG_SVC, "msg=\"registration lookup failed\" domain=%s err=\"%s\"",
                            t->name, dm_strerror(r));
        }
        dm_reg_result_done(&res);
}

static void *reg_worker_main(void *arg)
{
        struct dm_dns_reg *reg = arg;
        struct dm_dns_service *svc = reg->svc;
        const struct dm_conf *conf = &svc->app->conf;
        bool failing = false;

        while (!atomic_load(&svc->stopping)) {
                struct dm_reg_task t;
                size_t n = 0;
                int r =
                    dm_store_reg_claim_due(svc->store, dm_now_ms(), conf->registration_interval_ms,
                                           (unsigned)conf->default_checks, 1, &t, &n);
                if (r < 0) {
                        if (!failing)
                                dm_log_warn(REG_SVC,
                                            "msg=\"cannot claim registration checks\" err=\"%s\"",
                                            dm_strerror(r));
                        failing = true;
                        dm_dns_pause(svc, REG_RETRY_MS);
                        continue;
                }
                failing = false;
                if (n == 0) {
                        dm_dns_pause(svc, REG_IDLE_MS);
                        continue;
                }
                reg_check(reg, &t); /* the claim returns only domains with the check */
        }
        return NULL;
}

int dm_dns_reg_start(struct dm_dns_service *svc)
{
        const struct dm_conf *conf = &svc->app->conf;
        struct dm_dns_reg *reg = calloc(1, sizeof(*reg));
        int r;

        if (!reg)
                return DM_ENOMEM;
        reg->svc = svc;
        pthread_rwlock_init(&reg->lock, NULL);
        svc->reg = reg;
        r = dm_reg_lookup_init();
        if (r == 0)
                r = reg_load(conf, &reg->bs, &reg->mtime);
        if (r == 0)
                r = dm_reg_limiter_new(conf->registration_gap_ms, REG_MAX_BACKOFF_MS,
                                       &reg->limiter);
        if (r < 0)
                return r;
        reg->checked_mono = dm_mono_ms();
        size_t want = (size_t)conf->registration_workers;
        if (want > REG_WORKERS_MAX)
                want = REG_WORKERS_MAX;
        for (size_t i = 0; i < want; i++) {
                char name[16];
                snprintf(name, sizeof(name), "dns-reg-%u", (unsigned)(i % REG_WORKERS_MAX));
                if (pthread_create(&reg->threads[i], NULL, reg_worker_main, reg) != 0)
                        return DM_EAGAIN;
                pthread_setname_np(reg->threads[i], name);
                reg->nthreads++;
        }
        const char *path = dm_dns_reg_bootstrap_path(conf);
        char q[300];
        dm_log_info(REG_SVC,
                    "msg=\"registration checks started\" workers=%zu interval_s=%" PRId64
                    " bootstrap=%s entries=%zu whois_server=%s",
                    reg->nthreads, conf->registration_interval_ms / 1000,
                    dm_log_quote(q, sizeof(q), path ? path : "built-in"),
                    dm_rdap_bootstrap_count(reg->bs),
                    conf->whois_server ? conf->whois_server : "per-tld");
        return 0;
}

void dm_dns_reg_stop(struct dm_dns_service *svc)
{
        struct dm_dns_reg *reg = svc->reg;
        if (!reg)
                return;
        for (size_t i = 0; i < reg->nthreads; i++)
                pthread_join(reg->threads[i], NULL);
        dm_reg_limiter_free(reg->limiter);
        dm_rdap_bootstrap_free(reg->bs);
        pthread_rwlock_destroy(&reg->lock);
        free(reg);
        svc->reg = NULL;
}
