-- Generic WAL workload (contrib bloom) for the native redo conformance check
-- (pg_redo). Run with psql against a PostgreSQL 15 server configured with
-- wal_consistency_checking = 'all' and full_page_writes = on, then verify
-- the server's WAL with pg_redo's verify_wal_dir.
--
-- Every bloom page change is a Generic record: index build (full images),
-- inserts into existing pages (delta on the data page, plus the metapage
-- when the not-full-pages list moves), inserts that allocate a new page
-- (full image of it + delta of the metapage), VACUUM removing entries
-- (deltas) and rebuilding the metapage's free-page list, and inserts that
-- reuse the space VACUUM freed.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS bloom;

-- Build on existing rows: the build writes whole pages.
CREATE TABLE bl (i int, j int, k int, t text);
INSERT INTO bl SELECT g, g % 97, g % 13, md5(g::text) FROM generate_series(1, 5000) g;
CREATE INDEX bl_idx ON bl USING bloom (i, j, k) WITH (length = 80, col1 = 2, col2 = 2, col3 = 4);

-- Inserts one row at a time (deltas on the current insert page; new pages
-- when it fills up).
DO $$
BEGIN
  FOR g IN 5001..7000 LOOP
    INSERT INTO bl VALUES (g, g % 97, g % 13, md5(g::text));
  END LOOP;
END $$;

-- An index created on an empty table, then filled by bulk inserts.
CREATE TABLE bl2 (a int, b int);
CREATE INDEX bl2_idx ON bl2 USING bloom (a, b);
INSERT INTO bl2 SELECT g, g * 7 FROM generate_series(1, 8000) g;

-- Deletes and VACUUM: entries removed page by page, free pages listed in
-- the metapage.
DELETE FROM bl WHERE i % 3 = 0;
DELETE FROM bl WHERE i BETWEEN 100 AND 2500;
VACUUM bl;
DELETE FROM bl2 WHERE a % 2 = 0;
VACUUM bl2;

-- Inserts into the space VACUUM freed (pages from the metapage's list).
DO $$
BEGIN
  FOR g IN 10001..11500 LOOP
    INSERT INTO bl VALUES (g, g % 97, g % 13, md5(g::text));
  END LOOP;
END $$;
INSERT INTO bl2 SELECT g, g * 7 FROM generate_series(20001, 23000) g;

-- Everything deleted: VACUUM empties pages completely.
DELETE FROM bl2;
VACUUM bl2;
INSERT INTO bl2 SELECT g, g FROM generate_series(1, 500) g;

-- Rolled-back inserts still change index pages.
BEGIN;
INSERT INTO bl SELECT g, g % 97, g % 13, 'x' FROM generate_series(30001, 31000) g;
ROLLBACK;
VACUUM bl;

-- Queries through the index (no WAL, but they must keep working).
SET enable_seqscan = off;
SELECT count(*) FROM bl WHERE i = 4242 AND j = 4242 % 97;
SELECT count(*) FROM bl2 WHERE a = 250;
