/* RDAP domain answers (RFC 9083) -> struct dm_reg_record. */
#include "dm/registration.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dm/error.h"

/* Entities may nest (a registrar's abuse contact inside the registrar); how deep we look. */
#define RDAP_ENTITY_DEPTH 3

static bool has_role(const json_t *entity, const char *role)
{
        const json_t *v;
        size_t i;
        json_array_foreach(json_object_get(entity, "roles"), i, v)
        {
                if (json_is_string(v) && strcmp(json_string_value(v), role) == 0)
                        return true;
        }
        return false;
}

/* The text value of vCard property `prop` in a jCard (RFC 7095):
 * ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Example Inc."], ...]]. */
static void vcard_text(const json_t *entity, const char *prop, char *buf, size_t size)
{
        const json_t *card = json_object_get(entity, "vcardArray");
        const json_t *props = json_array_get(card, 1);
        const json_t *p;
        size_t i;

        buf[0] = '\0';
        if (!json_is_array(props))
                return;
        json_array_foreach(props, i, p)
        {
                const json_t *name = json_array_get(p, 0);
                const json_t *val = json_array_get(p, 3);
                if (!json_is_string(name) || strcasecmp(json_string_value(name), prop) != 0)
                        continue;
                if (json_is_string(val)) {
                        dm_reg_text_clean(buf, size, json_string_value(val),
                                          json_string_length(val));
                        return;
                }
                if (strcmp(prop, "adr") == 0 && json_is_array(val)) {
                        /* adr: [pobox, ext, street, locality, region, code, country]. */
                        const json_t *c = json_array_get(val, 6);
                        if (json_is_string(c))
                                dm_reg_text_clean(buf, size, json_string_value(c),
                                                  json_string_length(c));
                        /* RFC 8605's parameter form: {"cc": "NL"}. */
                        const json_t *cc = json_object_get(json_array_get(p, 1), "cc");
                        if (!buf[0] && json_is_string(cc))
                                dm_reg_text_clean(buf, size, json_string_value(cc),
                                                  json_string_length(cc));
                        return;
                }
                if (strcmp(prop, "org") == 0 && json_is_array(val)) {
                        const json_t *o = json_array_get(val, 0);
                        if (json_is_string(o))
                                dm_reg_text_clean(buf, size, json_string_value(o),
                                                  json_string_length(o));
                        return;
                }
        }
}

/* Redaction placeholders some registries publish instead of data. */
static bool redacted(const char *s)
{
        return strcasestr(s, "redacted") != NULL || strcasestr(s, "withheld") != NULL ||
               strcasestr(s, "not disclosed") != NULL;
}

static void keep_unless_redacted(char *s)
{
        if (redacted(s))
                s[0] = '\0';
}

static void read_entities(const json_t *entities, struct dm_reg_record *r, int depth)
{
        const json_t *e;
        size_t i;

        if (!json_is_array(entities) || depth > RDAP_ENTITY_DEPTH)
                return;
        json_array_foreach(entities, i, e)
        {
                if (!json_is_object(e))
                        continue;
                if (has_role(e, "registrar") && !r->registrar[0])
                        vcard_text(e, "fn", r->registrar, sizeof(r->registrar));
                if (has_role(e, "registrant") && dm_reg_registrant_is_empty(&r->registrant)) {
                        struct dm_reg_registrant *p = &r->registrant;
                        vcard_text(e, "fn", p->name, sizeof(p->name));
                        vcard_text(e, "org", p->organization, sizeof(p->organization));
                        vcard_text(e, "email", p->email, sizeof(p->email));
                        vcard_text(e, "adr", p->country, sizeof(p->country));
                        keep_unless_redacted(p->name);
                        keep_unless_redacted(p->organization);
                        keep_unless_redacted(p->email);
                        keep_unless_redacted(p->country);
                }
                read_entities(json_object_get(e, "entities"), r, depth + 1);
        }
}

static void read_events(const json_t *events, struct dm_reg_record *r)
{
        const json_t *e;
        size_t i;

        json_array_foreach(events, i, e)
        {
                const json_t *action = json_object_get(e, "eventAction");
                const json_t *date = json_object_get(e, "eventDate");
                int64_t *slot = NULL, t;

                if (!json_is_string(action) || !json_is_string(date))
                        continue;
                const char *a = json_string_value(action);
                if (strcmp(a, "registration") == 0)
                        slot = &r->created_at;
                else if (strcmp(a, "expiration") == 0)
                        slot = &r->expires_at;
                else if (strcmp(a, "last changed") == 0)
                        slot = &r->updated_at;
                /* "last update of RDAP database" moves with every answer: never read. */
                if (!slot || *slot)
                        continue;
                if (dm_reg_date_parse(json_string_value(date), json_string_length(date), &t) == 0)
                        *slot = t;
        }
}

int dm_rdap_parse(const char *data, size_t len, struct dm_reg_record *ret, char *err, size_t errlen)
{
        struct dm_reg_record r;
        json_error_t jerr;
        json_t *doc;
        const json_t *v, *ns;
        size_t i;

        doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
                return dm_errorf(DM_EPARSE, err, errlen, "RDAP answer is not JSON (line %d: %s)",
                                 jerr.line, jerr.text);
        if (!json_is_object(doc)) {
                json_decref(doc);
                return dm_errorf(DM_EPARSE, err, errlen, "RDAP answer is not a JSON object");
        }
        v = json_object_get(doc, "objectClassName");
        if (!json_is_string(v) || strcmp(json_string_value(v), "domain") != 0) {
                json_decref(doc);
                return dm_errorf(DM_EINVAL, err, errlen,
                                 "RDAP answer is not a domain object (objectClassName)");
        }
        dm_reg_record_init(&r);
        read_entities(json_object_get(doc, "entities"), &r, 0);
        read_events(json_object_get(doc, "events"), &r);
        json_array_foreach(json_object_get(doc, "nameservers"), i, ns)
        {
                v = json_object_get(ns, "ldhName");
                if (json_is_string(v))
                        dm_reg_add_name_server(&r, json_string_value(v), json_string_length(v));
        }
        json_array_foreach(json_object_get(doc, "status"), i, v)
        {
                if (json_is_string(v))
                        dm_reg_add_status(&r, json_string_value(v), json_string_length(v));
        }
        v = json_object_get(json_object_get(doc, "secureDNS"), "delegationSigned");
        if (json_is_boolean(v))
                r.dnssec = json_is_true(v) ? 1 : 0;
        dm_reg_record_normalize(&r);
        json_decref(doc);
        *ret = r;
        return 0;
}
