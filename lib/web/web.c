/* Web UI assets: lookup in the embedded table and content types. */
#include "dm/web.h"

#include <string.h>
#include <strings.h>

const struct dm_embed_file *dm_web_asset(const char *name)
{
        if (!name || !*name || name[0] == '.' || strchr(name, '/') || strchr(name, '\\'))
                return NULL;
        return dm_embed_find(dm_embed_web, name);
}

const char *dm_web_content_type(const char *name)
{
        static const struct {
                const char *ext;
                const char *type;
        } types[] = {
            {".html", "text/html; charset=utf-8"},
            {".js", "text/javascript; charset=utf-8"},
            {".css", "text/css; charset=utf-8"},
            {".svg", "image/svg+xml"},
            {".png", "image/png"},
            {".json", "application/json"},
            {".txt", "text/plain; charset=utf-8"},
        };
        const char *dot = name ? strrchr(name, '.') : NULL;

        if (dot) {
                for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
                        if (strcasecmp(dot, types[i].ext) == 0)
                                return types[i].type;
                }
        }
        return "application/octet-stream";
}
