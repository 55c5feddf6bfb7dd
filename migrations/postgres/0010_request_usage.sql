-- The day's GHL requests per purpose, as the daemon counts them, for
-- `ghlsync status` (which runs in another process than the limiter).
--
-- One row per (pair, side, UTC day, purpose), replaced on every reading:
-- `requests` is what was sent that day (an earlier run's count of the same
-- day is carried over at start), `projected` what the day will have used
-- at UTC midnight at the recent pace. `side_health.bulk_paused` says
-- whether bulk work (reconciliation, the children sweep) is held back now
-- because that projection leaves it no room. Kept identical to
-- migrations/sqlite/0010_request_usage.sql.
CREATE TABLE request_usage (
    pair         TEXT NOT NULL,
    side         TEXT NOT NULL CHECK (side = 'a' OR side = 'b'),
    day          TEXT NOT NULL,
    purpose      TEXT NOT NULL CHECK (purpose = 'poll' OR purpose = 'webhook_sync'
                                      OR purpose = 'reconcile' OR purpose = 'children_sweep'
                                      OR purpose = 'write' OR purpose = 'other'),
    requests     BIGINT NOT NULL,
    projected    BIGINT NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pair, side, day, purpose)
);

ALTER TABLE side_health ADD COLUMN bulk_paused BOOLEAN;
