-- Rate-limit headroom of each side of each pair as the daemon last saw it.
--
-- The limiter lives in the daemon's memory; `ghlsync status` runs in
-- another process, so the daemon writes what it knows here after each
-- detection pass and `status` reads it back with its age. One row per
-- (pair, side), replaced on every reading. The headroom columns are NULL
-- for sides without a request budget (REST apps). Kept identical to
-- migrations/postgres/0003_side_health.sql.
CREATE TABLE side_health (
    pair                TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('a', 'b')),
    side_name           TEXT NOT NULL,
    interval_remaining  INTEGER,
    daily_remaining     INTEGER,
    requests            INTEGER,
    throttled           INTEGER,
    recorded_at         TEXT NOT NULL,
    PRIMARY KEY (pair, side)
) STRICT;
