-- Which checks run for a domain and on which TLS ports, as sql/sqlite/006_checks.sql: checks
-- "dns,tls,registration" (empty: the configured default, DM_DEFAULT_CHECKS), tls_ports
-- "443,8443" (empty: 443). A constant default adds the columns without rewriting the table.
ALTER TABLE domains ADD COLUMN checks text NOT NULL DEFAULT '',
                    ADD COLUMN tls_ports text NOT NULL DEFAULT '';
