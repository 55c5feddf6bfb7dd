-- A field edited on both sides and settled by its policy (`ghl_wins`,
-- `app_wins`, `newest`, `union`) is journaled as `settled`, naming both
-- values, their times and the policy: the edit that lost is overwritten on
-- its side, and without this row nobody could tell afterwards that it
-- existed, nor why it went.
--
-- SQLite cannot alter a CHECK constraint in place, so the journal is
-- rebuilt as migration 0006 rebuilt it: renamed aside, created anew with
-- the new value (still a chain of comparisons, see 0006), copied with its
-- ids, and the old table dropped, inside the migration's transaction.
-- Nothing references the journal, so no other table is touched.

ALTER TABLE journal RENAME TO journal_before_0008;

CREATE TABLE journal (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    pair       TEXT NOT NULL,
    entity     TEXT NOT NULL CHECK (entity = 'contact' OR entity = 'task' OR entity = 'note' OR entity = 'appointment'),
    link_id    INTEGER,
    direction  TEXT CHECK (direction = 'a_to_b' OR direction = 'b_to_a'),
    a_id       TEXT,
    b_id       TEXT,
    -- The actions every decided record writes come first.
    action     TEXT NOT NULL CHECK (action = 'planned' OR action = 'applied' OR action = 'skipped_echo'
                                    OR action = 'seen' OR action = 'filtered' OR action = 'conflict_opened'
                                    OR action = 'conflict_resolved' OR action = 'dead_lettered'
                                    OR action = 'failed_attempt' OR action = 'settled'),
    fields     TEXT NOT NULL DEFAULT '[]',
    outbox_id  INTEGER,
    detail     TEXT
) STRICT;

INSERT INTO journal
    SELECT id, at, pair, entity, link_id, direction, a_id, b_id, action, fields, outbox_id, detail
    FROM journal_before_0008;

DROP TABLE journal_before_0008;

CREATE INDEX journal_link ON journal (link_id);
CREATE INDEX journal_a_id ON journal (a_id);
CREATE INDEX journal_b_id ON journal (b_id);
