-- Nothing to change on Postgres; this file keeps both backends' migration
-- versions the same.
--
-- migrations/sqlite/0006_enum_checks_as_comparisons.sql rewrites SQLite's
-- enumeration CHECKs from `x IN ('a', 'b', 'c')` to `x = 'a' OR ...`,
-- because SQLite builds a temporary b-tree of an IN list for every row it
-- checks. Postgres compiles the same IN list to one array comparison
-- (`x = ANY ('{a,b,c}')`), as cheap as the chain, so its constraints stay.
SELECT 1;
