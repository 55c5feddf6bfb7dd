-- Nothing reads the journal by time (history reads by link or record id,
-- newest first by id, which grows with time), so the index on `at` only
-- cost a write per journal row: every decided record pays for it.
DROP INDEX journal_at;
