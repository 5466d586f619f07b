"""PostgreSQL sink: COPY into staging tables, upsert, offsets in the same transaction."""
