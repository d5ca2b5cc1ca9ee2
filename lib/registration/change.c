/* From a lookup and the stored state to the store's commit item, the event body and the
 * API's object. */
#include "dm/regchange.h"

#include <stdlib.h>
#include <string.h>

#include "dm/error.h"
#include "dm/json.h"
#include "dm/time.h"

void dm_reg_commit_bufs_done(struct dm_reg_commit_bufs *b)
{
        if (!b)
                return;
        free(b->data);
        free(b->fields);
        b->data = b->fields = NULL;
}

/* The stored record, or false when there is none (or it does not read: then the next
 * lookup starts its history again rather than failing for ever). */
static bool stored_record(const struct dm_reg_state *stored, struct dm_reg_record *ret)
{
        if (!stored || !stored->data)
                return false;
        json_t *j = json_loads(stored->data, 0, NULL);
        int r = j ? dm_reg_record_from_json(j, ret) : DM_EINVAL;
        json_decref(j);
        return r == 0;
}

int dm_reg_commit_build(int64_t domain_id, int64_t now, const struct dm_reg_state *stored,
                        const struct dm_reg_result *res, struct dm_reg_commit *c,
                        struct dm_reg_commit_bufs *owned)
{
        memset(c, 0, sizeof(*c));
        memset(owned, 0, sizeof(*owned));
        c->domain_id = domain_id;
        c->checked_at = now;
        c->old_changed_at = stored ? stored->changed_at : 0;
        c->status = (int)res->status;
        c->source = (int)res->source;
        c->registrable = res->registrable;
        if (res->status != DM_REG_OK) {
                c->error = res->error[0] ? res->error : dm_reg_status_name(res->status);
                return 0;
        }
        struct dm_reg_record before;
        bool had = stored_record(stored, &before);
        json_t *j = dm_reg_record_to_json(&res->record);
        if (!j)
                return DM_ENOMEM;
        owned->data = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!owned->data)
                return DM_ENOMEM;
        int err = 0;
        json_t *fields = dm_reg_diff(had ? &before : NULL, &res->record, &err);
        if (err) {
                dm_reg_commit_bufs_done(owned);
                return err;
        }
        if (fields) {
                owned->fields = json_dumps(fields, JSON_COMPACT);
                json_decref(fields);
                if (!owned->fields) {
                        dm_reg_commit_bufs_done(owned);
                        return DM_ENOMEM;
                }
        }
        c->data = owned->data;
        c->fields = owned->fields;
        c->raw = res->raw;
        c->expires_at = res->record.expires_at;
        return 0;
}

char *dm_reg_change_event_json(const struct dm_reg_change *ch)
{
        char ts[DM_RFC3339_LEN];
        json_t *fields = json_loads(ch->fields ? ch->fields : "", 0, NULL);
        if (!fields)
                return NULL;
        json_t *o = json_pack("{sIssssso}", "id", (json_int_t)ch->id, "domain", ch->domain,
                              "observed_at", dm_time_format(ch->observed_at, ts), "fields", fields);
        if (!o)
                return NULL;
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return s;
}

static json_t *time_or_null(int64_t t)
{
        char ts[DM_RFC3339_LEN];
        return t ? json_string(dm_time_format(t, ts)) : json_null();
}

json_t *dm_reg_state_json(const char *domain, const struct dm_reg_state *stored)
{
        struct dm_reg_record rec;
        json_t *o, *r = NULL;

        if (!stored_record(stored, &rec))
                dm_reg_record_init(&rec);
        r = dm_reg_record_to_json(&rec);
        if (!r)
                return NULL;
        const char *source = stored ? dm_reg_source_name((enum dm_reg_source)stored->source) : NULL;
        o = json_pack("{sssoso}", "domain", domain, "registrable_domain",
                      stored && stored->registrable[0] ? json_string(stored->registrable)
                                                       : json_null(),
                      "source", source ? json_string(source) : json_null());
        if (!o)
                goto nomem;
        if (json_object_set_new(
                o, "status",
                json_string(dm_reg_status_name(stored ? (enum dm_reg_status)stored->status
                                                      : DM_REG_PENDING))) ||
            json_object_set_new(o, "error",
                                stored && stored->error ? dm_json_string_lossy(stored->error)
                                                        : json_null()) ||
            json_object_update(o, r) ||
            json_object_set_new(o, "checked_at", time_or_null(stored ? stored->checked_at : 0)))
                goto nomem;
        json_decref(r);
        return o;
nomem:
        json_decref(o);
        json_decref(r);
        return NULL;
}
