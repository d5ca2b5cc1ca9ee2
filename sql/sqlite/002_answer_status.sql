-- The class (ok, nxdomain, nodata) of a type's last real answer. A failed lookup keeps the
-- last values and must keep their class too: NODATA, then errors, then NXDOMAIN is a
-- change even though the set is empty before and after.
ALTER TABLE dns_current ADD COLUMN answer_status INTEGER NOT NULL DEFAULT 0;
UPDATE dns_current SET answer_status = status WHERE status <> 3;
