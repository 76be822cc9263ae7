-- GiST workload for the native redo conformance check (pg_redo). Run with
-- psql against a PostgreSQL 15 server configured with
-- wal_consistency_checking = 'all', full_page_writes = on and wal_level
-- replica or higher, then verify the server's WAL with pg_redo's
-- verify_wal_dir.
--
-- Produces every GiST record type SQL can: PAGE_UPDATE (inserts, downlink
-- updates completing splits, VACUUM removing tuples), PAGE_SPLIT (leaf and
-- internal splits, root splits, splits of a parent while it receives a
-- downlink), DELETE (LP_DEAD tuples pruned when a full leaf gets an insert),
-- PAGE_DELETE (VACUUM removing emptied leaves) and PAGE_REUSE (deleted pages
-- recycled by later splits). ASSIGN_LSN needs wal_level = minimal: run with
-- the psql variable assign_lsn_only set to do only the first section there.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- An index created in the inserting transaction: at wal_level = minimal its
-- changes are not WAL-logged, and GiST logs ASSIGN_LSN records to give its
-- pages distinct fake LSNs. At higher levels these are ordinary inserts
-- into a range_ops index.
BEGIN;
CREATE TABLE ga (id int, r int4range);
CREATE INDEX ga_r ON ga USING gist (r);
INSERT INTO ga SELECT g, int4range(g, g + g % 50) FROM generate_series(1, 2500) g;
COMMIT;
\if :{?assign_lsn_only}
\quit
\endif

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Indexes created empty, so that every page change is WAL-logged as it
-- happens (a build on existing rows logs finished pages as images).
CREATE TABLE gp (id int, p point, b box);
CREATE INDEX gp_p ON gp USING gist (p);
CREATE INDEX gp_b ON gp USING gist (b);
INSERT INTO gp
  SELECT g, point(g % 101, g / 101),
         box(point(g % 101, g / 101), point(g % 101 + g % 7, g / 101 + g % 5))
  FROM generate_series(1, 6500) g;

-- Wide keys (256 random hex characters, not compressible): few tuples per
-- page, so a few thousand rows make a deep tree with repeated root splits
-- and parents that split while taking a downlink.
CREATE TABLE gt (id int, t text);
CREATE INDEX gt_t ON gt USING gist (t);
INSERT INTO gt
  SELECT g, (SELECT string_agg(md5(g::text || '/' || x), '') FROM generate_series(1, 8) x)
  FROM generate_series(1, 3500) g;

-- LP_DEAD pruning: rows deleted and committed, an index scan over them
-- marks their index tuples dead, then new rows in the same region fill the
-- leaves, which drop the dead tuples instead of splitting (Gist/DELETE).
DELETE FROM gp WHERE p[0] BETWEEN 20 AND 60 AND p[1] < 40;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM gp WHERE p <@ box(point(20, 0), point(60, 40));
SELECT count(*) FROM gp WHERE b && box(point(20, 0), point(67, 45));
RESET enable_seqscan;
RESET enable_bitmapscan;
INSERT INTO gp
  SELECT -g, point(20 + g % 41 + 0.5, (g / 41) % 40 + 0.5),
         box(point(20 + g % 41 + 0.5, (g / 41) % 40), point(21 + g % 41, (g / 41) % 40 + 1))
  FROM generate_series(1, 1800) g;

-- VACUUM after a mass delete: tuples removed from leaves (PAGE_UPDATE),
-- emptied leaves deleted and unlinked from their parents (PAGE_DELETE).
DELETE FROM gp WHERE p[1] BETWEEN 10 AND 60 OR id % 3 = 0;
DELETE FROM gt WHERE id % 4 <> 0 OR id > 3000;
VACUUM gp;
VACUUM gt;

-- Let the deleted pages' xids fall behind every snapshot; the next VACUUM
-- hands them to the free space map, and splits reuse them (PAGE_REUSE).
SELECT txid_current() > 0;
SELECT txid_current() > 0;
VACUUM gp;
VACUUM gt;
INSERT INTO gp
  SELECT g, point(g % 101, 10 + (g / 101) % 50),
         box(point(g % 101, 10 + (g / 101) % 50), point(g % 101 + 1, 11 + (g / 101) % 50))
  FROM generate_series(20001, 23000) g;
INSERT INTO gt
  SELECT g, (SELECT string_agg(md5(x || ':' || g::text), '') FROM generate_series(1, 8) x)
  FROM generate_series(5001, 6500) g;

-- Queries through the indexes.
SET enable_seqscan = off;
SELECT count(*) FROM gp WHERE p <@ box(point(0, 0), point(50, 50));
SELECT count(*) FROM ga WHERE r && int4range(100, 200);
SELECT count(*) FROM gt WHERE t < '8';
