-- The mirror: what ghlsync last agreed with both sides of every pair, plus
-- the durable queues (outbox, dead letters) and the audit journal.
--
-- Conventions (kept identical to migrations/postgres/0001_mirror.sql):
-- * timestamps are RFC 3339 TEXT in UTC, truncated to microseconds by the
--   store, so they compare correctly as strings and round-trip unchanged;
-- * JSON documents are TEXT;
-- * enumerations are short lowercase TEXT guarded by CHECK constraints;
-- * tables are STRICT so a wrongly typed bind fails loudly, as on Postgres.

-- One row per configured pair. The locations are recorded so that pointing
-- an existing pair at another GHL location is refused instead of silently
-- corrupting every link.
CREATE TABLE pairs (
    name        TEXT NOT NULL PRIMARY KEY,
    a_side      TEXT NOT NULL,
    a_kind      TEXT NOT NULL,
    a_location  TEXT,
    b_side      TEXT NOT NULL,
    b_kind      TEXT NOT NULL,
    b_location  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

-- One row per synced record: its ids on both sides plus the base snapshot
-- (the mapped content both sides last agreed on) used for three-way merges.
CREATE TABLE links (
    id            INTEGER PRIMARY KEY,
    pair          TEXT NOT NULL REFERENCES pairs (name),
    entity        TEXT NOT NULL CHECK (entity IN ('contact', 'task', 'note', 'appointment')),
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

-- Change-detection position per (pair, side, entity, stream).
CREATE TABLE cursors (
    pair               TEXT NOT NULL REFERENCES pairs (name),
    side               TEXT NOT NULL CHECK (side IN ('a', 'b')),
    entity             TEXT NOT NULL CHECK (entity IN ('contact', 'task', 'note', 'appointment')),
    stream             TEXT NOT NULL DEFAULT '',
    watermark          TEXT,
    cursor             TEXT,
    last_poll_at       TEXT,
    last_success_at    TEXT,
    last_full_sync_at  TEXT,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (pair, side, entity, stream)
) STRICT;

-- Writes planned for a side, durable before the watermark moves.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE,
    pair             TEXT NOT NULL REFERENCES pairs (name),
    target_side      TEXT NOT NULL CHECK (target_side IN ('a', 'b')),
    entity           TEXT NOT NULL CHECK (entity IN ('contact', 'task', 'note', 'appointment')),
    op               TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete', 'complete', 'add_tags', 'remove_tags')),
    link_id          INTEGER REFERENCES links (id),
    target_id        TEXT,
    parent_id        TEXT,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    locked_until     TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    completed_at     TEXT
) STRICT;

CREATE INDEX outbox_status_next_attempt ON outbox (status, next_attempt_at);
CREATE INDEX outbox_link ON outbox (link_id);

-- Audit history: every decision about every record. Append-only, so no
-- foreign keys (pruning the outbox must never fail because of history).
CREATE TABLE journal (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    pair       TEXT NOT NULL,
    entity     TEXT NOT NULL CHECK (entity IN ('contact', 'task', 'note', 'appointment')),
    link_id    INTEGER,
    direction  TEXT CHECK (direction IN ('a_to_b', 'b_to_a')),
    a_id       TEXT,
    b_id       TEXT,
    action     TEXT NOT NULL CHECK (action IN ('seen', 'planned', 'applied', 'skipped_echo', 'filtered',
                                               'conflict_opened', 'conflict_resolved', 'dead_lettered',
                                               'failed_attempt')),
    fields     TEXT NOT NULL DEFAULT '[]',
    outbox_id  INTEGER,
    detail     TEXT
) STRICT;

CREATE INDEX journal_link ON journal (link_id);
CREATE INDEX journal_a_id ON journal (a_id);
CREATE INDEX journal_b_id ON journal (b_id);
CREATE INDEX journal_at ON journal (at);

-- Fields edited on both sides under the `manual` policy, parked until an
-- operator decides. At most one open conflict per (link, field).
CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY,
    pair         TEXT NOT NULL REFERENCES pairs (name),
    entity       TEXT NOT NULL CHECK (entity IN ('contact', 'task', 'note', 'appointment')),
    link_id      INTEGER NOT NULL REFERENCES links (id),
    field        TEXT NOT NULL,
    base_value   TEXT,
    a_value      TEXT,
    b_value      TEXT,
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolution   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    resolved_at  TEXT
) STRICT;

CREATE UNIQUE INDEX conflicts_open_link_field ON conflicts (link_id, field) WHERE status = 'open';

-- Records or writes that failed for good, with the reason, for an operator.
CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY,
    pair        TEXT NOT NULL,
    side        TEXT NOT NULL CHECK (side IN ('a', 'b')),
    entity      TEXT NOT NULL CHECK (entity IN ('contact', 'task', 'note', 'appointment')),
    record_id   TEXT,
    outbox_id   INTEGER,
    stage       TEXT NOT NULL CHECK (stage IN ('read', 'map', 'write')),
    reason      TEXT NOT NULL,
    payload     TEXT,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'retried', 'dropped')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE INDEX dead_letters_status ON dead_letters (status);

-- OAuth tokens of GHL sides (location or agency/company tokens).
CREATE TABLE oauth_tokens (
    subject        TEXT NOT NULL PRIMARY KEY,
    client_id      TEXT NOT NULL,
    access_token   TEXT NOT NULL,
    refresh_token  TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    scopes         TEXT NOT NULL DEFAULT '',
    user_type      TEXT,
    company_id     TEXT,
    location_id    TEXT,
    updated_at     TEXT NOT NULL
) STRICT;
