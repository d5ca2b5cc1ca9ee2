-- Which checks run for a domain and on which TLS ports. Both are text as record_types is:
-- checks "dns,tls,registration" (empty: the configured default, DM_DEFAULT_CHECKS), tls_ports
-- "443,8443" (empty: 443). Domains that existed before take the default like new ones that
-- name none.
ALTER TABLE domains ADD COLUMN checks TEXT NOT NULL DEFAULT '';
ALTER TABLE domains ADD COLUMN tls_ports TEXT NOT NULL DEFAULT '';
