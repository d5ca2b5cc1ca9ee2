/* The web UI's assets (web/, embedded at build time) and the headers every UI response
 * carries. The UI is one HTML page and its script and style: the server answers the page
 * for every URL the UI owns (/, /domains/{name}, /alerts) and the script draws the view
 * for the path. */
#ifndef DM_WEB_H
#define DM_WEB_H

#include <stddef.h>

#include "dm/embed.h"

/* No inline script or style, nothing from elsewhere, no framing: what a TXT record could
 * smuggle into the page has nothing to run with. */
#define DM_WEB_CSP                                                                                 \
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                \
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* The page the UI's URLs answer with. */
#define DM_WEB_INDEX "index.html"

/* The embedded asset called `name` (a plain file name: no '/', not starting with '.'),
 * or NULL. */
const struct dm_embed_file *dm_web_asset(const char *name);

/* The Content-Type of an asset by its extension (static string); unknown extensions are
 * application/octet-stream. */
const char *dm_web_content_type(const char *name);

#endif
