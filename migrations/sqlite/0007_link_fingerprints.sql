-- A record its side keeps no change time for (GHL tasks; notes, which
-- have `dateAdded` only) is told apart from its earlier versions by
-- content: each side of a link keeps the fingerprint of the version it
-- took in last, as it keeps `updated_at` for the others.
ALTER TABLE links ADD COLUMN a_fingerprint TEXT;
ALTER TABLE links ADD COLUMN b_fingerprint TEXT;
