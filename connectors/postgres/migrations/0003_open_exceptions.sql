-- Issue 12: the sink's exception-ageing metrics read the oldest open exception of each kind
-- every 30 s. Open exceptions are the few among many resolved ones: a partial index keeps that
-- read to one index probe per kind and partition.
CREATE INDEX recon_exceptions_open_idx ON recon_exceptions (kind, raised_at)
    WHERE status = 'open';
