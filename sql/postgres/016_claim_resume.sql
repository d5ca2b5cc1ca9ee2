-- Where the last full claim of any process ended: the next claim, whichever process makes
-- it, walks the due index from there instead of past the rows other processes have just
-- claimed. One row, never absent; NULL when no claim has a place to resume.
CREATE TABLE claim_resume (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    at_ms bigint,
    domain_id bigint
);
INSERT INTO claim_resume (one) VALUES (true);
