-- A field edited on both sides and settled by its policy (`ghl_wins`,
-- `app_wins`, `newest`, `union`) is journaled as `settled`, naming both
-- values, their times and the policy: the edit that lost is overwritten on
-- its side, and without this row nobody could tell afterwards that it
-- existed, nor why it went. Postgres replaces the CHECK in place; the
-- constraint is the one 0001 declared on the column (its default name).
ALTER TABLE journal DROP CONSTRAINT journal_action_check;
ALTER TABLE journal ADD CONSTRAINT journal_action_check
    CHECK (action IN ('seen', 'planned', 'applied', 'skipped_echo', 'filtered',
                      'conflict_opened', 'conflict_resolved', 'dead_lettered',
                      'failed_attempt', 'settled'));
