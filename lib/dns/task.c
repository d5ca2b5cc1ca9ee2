#include "dm/task.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/error.h"
#include "dm/hex.h"
#include "dm/json.h"
#include "dm/name.h"
#include "dm/rrtype.h"

static const struct dm_json_field msg_fields[] = {
    {.name = "tasks", .type = DM_JSON_ARRAY, .flags = DM_JSON_REQUIRED},
    {.name = NULL},
};

static const struct dm_json_field task_fields[] = {
    {.name = "id", .type = DM_JSON_INTEGER, .flags = DM_JSON_REQUIRED},
    {.name = "name", .type = DM_JSON_STRING, .flags = DM_JSON_REQUIRED},
    {.name = "types", .type = DM_JSON_ARRAY, .flags = DM_JSON_REQUIRED},
    {.name = "fp", .type = DM_JSON_STRING, .flags = DM_JSON_REQUIRED},
    /* Optional: a task from a scheduler that predates them means DNS alone. */
    {.name = "checks", .type = DM_JSON_ARRAY, .flags = 0},
    {.name = "tls_ports", .type = DM_JSON_ARRAY, .flags = 0},
    {.name = NULL},
};

int dm_scan_tasks_encode(const struct dm_scan_task *t, size_t n, struct dm_buf *b)
{
        dm_buf_clear(b);
        int r = dm_buf_addstr(b, "{\"tasks\":[");
        for (size_t i = 0; r == 0 && i < n; i++) {
                char hex[2 * DM_FP_LEN + 1], tbuf[16];
                r = dm_buf_addf(b, "%s{\"id\":%" PRId64 ",\"name\":", i ? "," : "", t[i].domain_id);
                if (r == 0)
                        r = dm_json_buf_add_string(b, t[i].name);
                if (r == 0)
                        r = dm_buf_addstr(b, ",\"types\":[");
                for (size_t j = 0; r == 0 && j < t[i].nrecord_types; j++)
                        r = dm_buf_addf(b, "%s\"%s\"", j ? "," : "",
                                        dm_rrtype_name(t[i].record_types[j], tbuf));
                dm_hex_encode(t[i].dns_fp, DM_FP_LEN, hex);
                if (r == 0)
                        r = dm_buf_addf(b, "],\"fp\":\"%s\",\"checks\":[", hex);
                for (unsigned bit = 1, k = 0; r == 0 && bit <= DM_CHECKS_ALL; bit <<= 1) {
                        if (t[i].checks & bit)
                                r = dm_buf_addf(b, "%s\"%s\"", k++ ? "," : "", dm_check_name(bit));
                }
                if (r == 0)
                        r = dm_buf_addstr(b, "],\"tls_ports\":[");
                for (size_t j = 0; r == 0 && j < t[i].ntls_ports; j++)
                        r = dm_buf_addf(b, "%s%u", j ? "," : "", (unsigned)t[i].tls_ports[j]);
                if (r == 0)
                        r = dm_buf_addstr(b, "]}");
        }
        if (r == 0)
                r = dm_buf_addstr(b, "]}");
        return r;
}

static int task_fail(char *why, size_t whylen, size_t index, const char *detail)
{
        return dm_errorf(DM_EINVAL, why, whylen, "tasks[%zu]: %s", index, detail);
}

static int decode_task(const json_t *t, size_t index, char *why, size_t whylen,
                       struct dm_scan_task *ret_task)
{
        struct dm_json_error jerr;
        if (!json_is_object(t))
                return task_fail(why, whylen, index, "must be an object");
        if (dm_json_check_fields(t, task_fields, &jerr) < 0) {
                char detail[160];
                snprintf(detail, sizeof(detail), "%.40s %.100s", jerr.field, jerr.detail);
                return task_fail(why, whylen, index, detail);
        }
        json_int_t id = json_integer_value(json_object_get(t, "id"));
        const json_t *name = json_object_get(t, "name");
        const json_t *types = json_object_get(t, "types");
        const char *fp = json_string_value(json_object_get(t, "fp"));
        struct dm_scan_task task = {.domain_id = (int64_t)id};

        if (id <= 0)
                return task_fail(why, whylen, index, "id must be positive");
        if (json_string_length(name) > DM_NAME_MAX ||
            strlen(json_string_value(name)) != json_string_length(name) ||
            !dm_name_is_stored_form(json_string_value(name)))
                return task_fail(why, whylen, index, "name is not a lower-case A-label");
        memcpy(task.name, json_string_value(name), json_string_length(name) + 1);
        if (json_array_size(types) > DM_RRTYPE_MAX_PER_DOMAIN)
                return task_fail(why, whylen, index, "too many types");
        size_t i;
        const json_t *v;
        json_array_foreach(types, i, v)
        {
                const char *s = json_string_value(v);
                if (!s || dm_rrtype_from_name(s, &task.record_types[task.nrecord_types]) < 0)
                        return task_fail(why, whylen, index, "types holds an unknown type");
                task.nrecord_types++;
        }
        if (dm_hex_decode(fp, strlen(fp), task.dns_fp, DM_FP_LEN) < 0)
                return task_fail(why, whylen, index, "fp must be 32 hex digits");
        const json_t *checks = json_object_get(t, "checks");
        if (!checks)
                task.checks = DM_CHECKS_DNS;
        json_array_foreach(checks, i, v)
        {
                const char *s = json_string_value(v);
                unsigned bit;
                if (!s || dm_check_from_name(s, json_string_length(v), &bit) < 0)
                        return task_fail(why, whylen, index, "checks holds an unknown check");
                task.checks |= bit;
        }
        const json_t *ports = json_object_get(t, "tls_ports");
        if (json_array_size(ports) > DM_TLS_PORTS_MAX)
                return task_fail(why, whylen, index, "too many tls_ports");
        json_array_foreach(ports, i, v)
        {
                json_int_t p = json_integer_value(v);
                if (!json_is_integer(v) || p < 1 || p > 65535)
                        return task_fail(why, whylen, index, "tls_ports holds a bad port");
                for (size_t k = 0; k < task.ntls_ports; k++) {
                        if (task.tls_ports[k] == p)
                                return task_fail(why, whylen, index, "tls_ports repeats a port");
                }
                task.tls_ports[task.ntls_ports++] = (uint16_t)p;
        }
        *ret_task = task;
        return 0;
}

int dm_scan_tasks_decode(const void *body, size_t len, char *why, size_t whylen,
                         struct dm_scan_task **ret_tasks, size_t *ret_n)
{
        struct dm_json_error jerr;
        struct dm_scan_task *tasks = NULL;
        json_t *doc = NULL;
        int r;

        if (len > DM_TASK_MSG_MAX)
                return dm_errorf(DM_E2BIG, why, whylen, "message larger than %u bytes",
                                 DM_TASK_MSG_MAX);
        r = dm_json_parse_object((const char *)body, len, &jerr, &doc);
        if (r < 0)
                return dm_errorf(r, why, whylen, "%s", jerr.detail);
        r = dm_json_check_fields(doc, msg_fields, &jerr);
        if (r < 0) {
                dm_errorf(r, why, whylen, "%.40s %.100s", jerr.field, jerr.detail);
                goto free_doc;
        }
        const json_t *list = json_object_get(doc, "tasks");
        size_t count = json_array_size(list);
        if (count == 0 || count > DM_TASKS_PER_MSG_MAX) {
                r = dm_errorf(DM_EINVAL, why, whylen, "tasks must hold 1 to %d entries",
                              DM_TASKS_PER_MSG_MAX);
                goto free_doc;
        }
        tasks = calloc(count, sizeof(*tasks));
        if (!tasks) {
                r = dm_errorf(DM_ENOMEM, why, whylen, "out of memory");
                goto free_doc;
        }
        for (size_t i = 0; i < count; i++) {
                r = decode_task(json_array_get(list, i), i, why, whylen, &tasks[i]);
                if (r < 0)
                        goto free_tasks;
        }
        json_decref(doc);
        *ret_tasks = tasks;
        *ret_n = count;
        return 0;

free_tasks:
        free(tasks);
free_doc:
        json_decref(doc);
        return r;
}
