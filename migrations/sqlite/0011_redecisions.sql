-- Records to decide again, durably. A write withdrawn (its target changed
-- since it was planned), completed on a record a user made meanwhile, or
-- overtaken by a newer decision of its source leaves a change no decision
-- has carried to the other side yet, on a version the link has already
-- taken in: no poll will read it again. The row is written in the
-- transaction that ends the write, and deleted in the transaction of the
-- decision that takes it; a failed attempt (the side unavailable) waits
-- for `due_at` and is tried again, so neither an error nor a crash leaves
-- the change to the next full reconciliation. One row per link: `side` is
-- the side whose record is decided again ('a' = GHL, 'b' = the other).
-- Kept identical to migrations/postgres/0011_redecisions.sql but for types.
CREATE TABLE redecisions (
    link_id     INTEGER PRIMARY KEY REFERENCES links (id) ON DELETE CASCADE,
    side        TEXT NOT NULL CHECK (side = 'a' OR side = 'b'),
    reason      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    due_at      TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE INDEX redecisions_due ON redecisions (due_at);
