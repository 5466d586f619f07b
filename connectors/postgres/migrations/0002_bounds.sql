-- Issue 9: bounded dead letters and two new exception kinds.
--
-- Dead letters (DeadLetter v2) keep a bounded prefix of the raw key and value; these columns
-- hold the full sizes and SHA-256 digests (lower-case hex). NULL for rows written before, and
-- when the record had no key or no value. Adding them to the partitioned parent adds them to
-- every partition.
ALTER TABLE recon_dead_letters
    ADD COLUMN key_size     bigint CONSTRAINT recon_dead_letters_key_size_check CHECK (key_size >= 0),
    ADD COLUMN value_size   bigint CONSTRAINT recon_dead_letters_value_size_check CHECK (value_size >= 0),
    ADD COLUMN key_sha256   text   CONSTRAINT recon_dead_letters_key_sha256_check
                                   CHECK (key_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN value_sha256 text   CONSTRAINT recon_dead_letters_value_sha256_check
                                   CHECK (value_sha256 ~ '^[0-9a-f]{64}$');

-- Exception v2 adds AMOUNT_OVERFLOW and GROUP_LIMIT. The partitions inherit the parent's CHECK
-- (same name, not local), so dropping it on the parent drops it everywhere and adding it back
-- adds it to every partition, DEFAULT included. Existing rows are re-checked once: the new set
-- contains the old one, so they pass.
ALTER TABLE recon_exceptions DROP CONSTRAINT recon_exceptions_kind_check;
ALTER TABLE recon_exceptions ADD CONSTRAINT recon_exceptions_kind_check
    CHECK (kind IN ('MISSING_LEDGER', 'MISSING_PAYMENT', 'AMOUNT_MISMATCH', 'CURRENCY_MISMATCH',
                    'DUPLICATE_CONFLICT', 'AMOUNT_OVERFLOW', 'GROUP_LIMIT'));
