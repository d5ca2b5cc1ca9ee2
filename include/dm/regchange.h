/* What a registration check writes: the stored state and a lookup's result in, the store's
 * commit item out. The change rule itself is dm_reg_diff (dm/registration.h); this applies
 * it to what the store holds.
 * Thread-safety: none needed; functions only touch what they are given. */
#ifndef DM_REGCHANGE_H
#define DM_REGCHANGE_H

#include "dm/reglookup.h"
#include "dm/store.h"

/* Builds the commit of one check of domain `domain_id` at `now`. `stored` is the stored
 * state (NULL: never checked). A successful lookup carries its record (JSON) and raw text,
 * and the fields that changed against the stored record when any did (on first sight:
 * every published field); a failed or unsupported one carries only its status and reason,
 * so the last data stays. The strings *c points to are owned by *ret_owned (free with
 * free()), or by `res`. Returns 0, DM_ENOMEM. */
struct dm_reg_commit_bufs {
        char *data;
        char *fields;
};
int dm_reg_commit_build(int64_t domain_id, int64_t now, const struct dm_reg_state *stored,
                        const struct dm_reg_result *res, struct dm_reg_commit *ret_commit,
                        struct dm_reg_commit_bufs *ret_owned);
void dm_reg_commit_bufs_done(struct dm_reg_commit_bufs *b);

/* The outbox body of a change.registration event: {"id", "domain", "observed_at",
 * "fields"}, the history entry plus "domain". malloc'd; NULL on ENOMEM or when `fields` is
 * not JSON. */
char *dm_reg_change_event_json(const struct dm_reg_change *ch);

/* The registration object the API shows: {"domain", "registrable_domain", "source",
 * "status", "error", "registrar", "created_at", "updated_at", "expires_at", "name_servers",
 * "statuses", "dnssec", "registrant", "checked_at"}. `stored` NULL: pending. New
 * reference; NULL on ENOMEM. */
json_t *dm_reg_state_json(const char *domain, const struct dm_reg_state *stored);

#endif
