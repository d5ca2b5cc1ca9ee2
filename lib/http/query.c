/* Query-string values beyond integers: booleans, read strictly. */
#include "dm/http.h"

#include <string.h>

#include "dm/error.h"

int dm_http_bool_parse(const char *s, bool *ret_value)
{
        if (s && strcmp(s, "true") == 0) {
                *ret_value = true;
                return 0;
        }
        if (s && strcmp(s, "false") == 0) {
                *ret_value = false;
                return 0;
        }
        return DM_EINVAL;
}

int dm_http_query_bool(const struct dm_http_request *req, const char *name, bool def,
                       struct dm_http_response *res, bool *ret_value)
{
        const char *v = dm_http_query(req, name);

        if (!v) {
                *ret_value = def;
                return 0;
        }
        if (dm_http_bool_parse(v, ret_value) < 0) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, name,
                                      "must be true or false");
                return DM_EINVAL;
        }
        return 0;
}
