-- Browser sessions of the web UI (lib/session). id is the SHA-256 (hex) of the random token
-- the signed cookie carries, so a copy of this table signs nobody in. Signing out deletes
-- the row: the cookie, however well signed, is refused from then on.
CREATE TABLE sessions (
    id         text   PRIMARY KEY,
    key_id     text   NOT NULL,                  -- api_keys.key_id the session was opened with
    scope      text   NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);

CREATE INDEX sessions_expires ON sessions (expires_at);

-- Values the service makes once and keeps, such as the session signing secret when
-- SECRET_KEY is not set. Written once, never changed.
CREATE TABLE settings (
    name       text   PRIMARY KEY,
    value      text   NOT NULL,
    created_at bigint NOT NULL
);
