-- Enumeration CHECK constraints rewritten from `x IN ('a', 'b', 'c')` to
-- `x = 'a' OR x = 'b' OR x = 'c'`: the same rule, far cheaper to enforce.
--
-- SQLite evaluates a CHECK with an IN list of three or more values by
-- building a temporary b-tree of the list for every row it checks (see
-- `EXPLAIN INSERT`: OpenEphemeral and one IdxInsert per value). Links,
-- outbox and journal rows are written for every decided record, so on the
-- engine benchmark those temporary b-trees were about a fifth of the
-- mirror's write time. A chain of comparisons compiles to a few `Eq`
-- opcodes and rejects exactly the same values.
--
-- SQLite cannot alter a CHECK constraint in place, so each table with such
-- a list is rebuilt: renamed aside, created anew, copied, and the old one
-- dropped, inside the migration's transaction (a failure leaves the mirror
-- as it was). Renaming `links` while foreign keys are enforced repoints the
-- REFERENCES of `outbox` and `conflicts` to the renamed table; both are
-- rebuilt here against the new `links`, so nothing is left pointing at
-- the old one. Ids are copied, so outbox ids, link ids and the journal's
-- references keep their meaning. Indexes are created after the copy (their
-- names are freed when the old tables are dropped). On a large mirror this
-- migration copies every row once: about as long as writing them did.
--
-- Postgres compiles IN lists to a single array comparison; its schema is
-- unchanged.

ALTER TABLE links RENAME TO links_before_0006;
ALTER TABLE cursors RENAME TO cursors_before_0006;
ALTER TABLE outbox RENAME TO outbox_before_0006;
ALTER TABLE journal RENAME TO journal_before_0006;
ALTER TABLE conflicts RENAME TO conflicts_before_0006;
ALTER TABLE dead_letters RENAME TO dead_letters_before_0006;

CREATE TABLE links (
    id            INTEGER PRIMARY KEY,
    pair          TEXT NOT NULL REFERENCES pairs (name),
    entity        TEXT NOT NULL CHECK (entity = 'contact' OR entity = 'task' OR entity = 'note' OR entity = 'appointment'),
    a_id          TEXT,
    b_id          TEXT,
    a_parent_id   TEXT,
    b_parent_id   TEXT,
    content       TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    a_updated_at  TEXT,
    b_updated_at  TEXT,
    deleted_at    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (pair, entity, a_id),
    UNIQUE (pair, entity, b_id)
) STRICT;

CREATE TABLE cursors (
    pair               TEXT NOT NULL REFERENCES pairs (name),
    side               TEXT NOT NULL CHECK (side = 'a' OR side = 'b'),
    entity             TEXT NOT NULL CHECK (entity = 'contact' OR entity = 'task' OR entity = 'note' OR entity = 'appointment'),
    stream             TEXT NOT NULL DEFAULT '',
    watermark          TEXT,
    cursor             TEXT,
    last_poll_at       TEXT,
    last_success_at    TEXT,
    last_full_sync_at  TEXT,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (pair, side, entity, stream)
) STRICT;

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE,
    pair             TEXT NOT NULL REFERENCES pairs (name),
    target_side      TEXT NOT NULL CHECK (target_side = 'a' OR target_side = 'b'),
    entity           TEXT NOT NULL CHECK (entity = 'contact' OR entity = 'task' OR entity = 'note' OR entity = 'appointment'),
    op               TEXT NOT NULL CHECK (op = 'create' OR op = 'update' OR op = 'delete' OR op = 'complete'
                                          OR op = 'add_tags' OR op = 'remove_tags'),
    link_id          INTEGER REFERENCES links (id),
    target_id        TEXT,
    parent_id        TEXT,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status = 'pending' OR status = 'done' OR status = 'dead'
                                                              OR status = 'cancelled'),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    locked_until     TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    completed_at     TEXT
) STRICT;

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
                                    OR action = 'failed_attempt'),
    fields     TEXT NOT NULL DEFAULT '[]',
    outbox_id  INTEGER,
    detail     TEXT
) STRICT;

CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY,
    pair         TEXT NOT NULL REFERENCES pairs (name),
    entity       TEXT NOT NULL CHECK (entity = 'contact' OR entity = 'task' OR entity = 'note' OR entity = 'appointment'),
    link_id      INTEGER NOT NULL REFERENCES links (id),
    field        TEXT NOT NULL,
    base_value   TEXT,
    a_value      TEXT,
    b_value      TEXT,
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status = 'open' OR status = 'resolved'),
    resolution   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    resolved_at  TEXT
) STRICT;

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY,
    pair        TEXT NOT NULL,
    side        TEXT NOT NULL CHECK (side = 'a' OR side = 'b'),
    entity      TEXT NOT NULL CHECK (entity = 'contact' OR entity = 'task' OR entity = 'note' OR entity = 'appointment'),
    record_id   TEXT,
    outbox_id   INTEGER,
    stage       TEXT NOT NULL CHECK (stage = 'read' OR stage = 'map' OR stage = 'write'),
    reason      TEXT NOT NULL,
    payload     TEXT,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status = 'open' OR status = 'retried' OR status = 'dropped'),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

-- Parents before children, so every foreign key is checked on the way in.
INSERT INTO links
    SELECT id, pair, entity, a_id, b_id, a_parent_id, b_parent_id, content, content_hash,
           a_updated_at, b_updated_at, deleted_at, created_at, updated_at
    FROM links_before_0006;
INSERT INTO cursors
    SELECT pair, side, entity, stream, watermark, cursor, last_poll_at, last_success_at,
           last_full_sync_at, updated_at
    FROM cursors_before_0006;
INSERT INTO outbox
    SELECT id, idempotency_key, pair, target_side, entity, op, link_id, target_id, parent_id,
           payload, status, attempts, next_attempt_at, locked_until, last_error, created_at,
           updated_at, completed_at
    FROM outbox_before_0006;
INSERT INTO journal
    SELECT id, at, pair, entity, link_id, direction, a_id, b_id, action, fields, outbox_id, detail
    FROM journal_before_0006;
INSERT INTO conflicts
    SELECT id, pair, entity, link_id, field, base_value, a_value, b_value, status, resolution,
           created_at, updated_at, resolved_at
    FROM conflicts_before_0006;
INSERT INTO dead_letters
    SELECT id, pair, side, entity, record_id, outbox_id, stage, reason, payload, status,
           created_at, updated_at
    FROM dead_letters_before_0006;

-- Children before parents: nothing references a table when it goes.
DROP TABLE conflicts_before_0006;
DROP TABLE outbox_before_0006;
DROP TABLE journal_before_0006;
DROP TABLE dead_letters_before_0006;
DROP TABLE cursors_before_0006;
DROP TABLE links_before_0006;

CREATE INDEX outbox_status_next_attempt ON outbox (status, next_attempt_at);
CREATE INDEX outbox_link ON outbox (link_id);
CREATE INDEX journal_link ON journal (link_id);
CREATE INDEX journal_a_id ON journal (a_id);
CREATE INDEX journal_b_id ON journal (b_id);
CREATE UNIQUE INDEX conflicts_open_link_field ON conflicts (link_id, field) WHERE status = 'open';
CREATE INDEX dead_letters_status ON dead_letters (status);
