-- Expiry alerts look for domains whose certificate or registration expires within their
-- largest threshold: partial indexes, so that domains with no date cost nothing.
CREATE INDEX domains_tls_expiry ON domains (tls_expires_at) WHERE tls_expires_at > 0;
CREATE INDEX domains_registration_expiry ON domains (registration_expires_at)
    WHERE registration_expires_at > 0;
