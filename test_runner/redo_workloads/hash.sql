-- Hash index workload for the native redo conformance check (pg_redo).
--
-- Run with psql against a PostgreSQL 15 server configured with
-- wal_consistency_checking = 'all', full_page_writes = on and
-- autovacuum = off, then verify the server's WAL with pg_redo's
-- verify_wal_dir (pagectl wal-verify).
--
-- Produces every Hash record type SQL can reach: INIT_META_PAGE (main and
-- init fork), INIT_BITMAP_PAGE, INSERT, ADD_OVFL_PAGE (new and recycled
-- overflow pages), SPLIT_ALLOCATE_PAGE (with mask and splitpoint updates),
-- SPLIT_PAGE, SPLIT_COMPLETE, MOVE_PAGE_CONTENTS, SQUEEZE_PAGE, DELETE,
-- SPLIT_CLEANUP, UPDATE_META_PAGE and VACUUM_ONE_PAGE. (ADD_OVFL_PAGE with
-- a new bitmap page needs 32768 overflow pages; a unit test covers it.)
--
-- fillfactor = 10 makes buckets hold ~40 tuples (instead of ~300), so a
-- few thousand rows give many splits while keeping the WAL small.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- An index built on an empty table: metapage, two buckets, one bitmap page.
CREATE TABLE hx (id int, k int);
CREATE INDEX hx_k ON hx USING hash (k) WITH (fillfactor = 10);

-- A few keys with many duplicates: long overflow chains. Their buckets
-- split later, when the distinct keys below grow the table; the moved
-- duplicates fill the new bucket's pages (SPLIT_PAGE, and overflow pages
-- added during the split).
INSERT INTO hx SELECT g, -(g % 4) FROM generate_series(1, 3600) g;
-- Distinct keys: bucket splits all along.
INSERT INTO hx SELECT g, g FROM generate_series(1, 2000) g;
INSERT INTO hx SELECT g, -(g % 4) FROM generate_series(3601, 5200) g;
-- After a checkpoint, the first change of each page carries a full-page
-- image: split records whose bucket pages PostgreSQL edits after restoring
-- the image (SPLIT_ALLOCATE_PAGE old bucket, SPLIT_COMPLETE).
CHECKPOINT;
INSERT INTO hx SELECT g, g FROM generate_series(2001, 4000) g;

-- Deletes and VACUUM: tuples removed bucket by bucket (DELETE), the
-- leftovers of earlier splits removed (SPLIT_CLEANUP), chains squeezed
-- (MOVE_PAGE_CONTENTS, SQUEEZE_PAGE), tuple count updated
-- (UPDATE_META_PAGE).
DELETE FROM hx WHERE k < 0 AND id % 3 <> 0;
DELETE FROM hx WHERE k > 0 AND k % 5 = 0;
VACUUM hx;

-- New duplicates reuse the freed overflow pages (ADD_OVFL_PAGE that sets a
-- bitmap bit), and more splits follow.
INSERT INTO hx SELECT g, -(g % 4) FROM generate_series(10001, 11200) g;
INSERT INTO hx SELECT g, g FROM generate_series(4001, 4800) g;

-- A second round of deletes and VACUUM: chains emptied entirely.
DELETE FROM hx WHERE k IN (-1, -2);
VACUUM hx;

-- LP_DEAD items: delete rows of one key, let an index scan mark their
-- index entries dead (LH_PAGE_HAS_DEAD_TUPLES), then insert the same key:
-- the full bucket page is cleaned first (VACUUM_ONE_PAGE).
CREATE TABLE hd (id int, k int);
CREATE INDEX hd_k ON hd USING hash (k);
INSERT INTO hd SELECT g, 7 FROM generate_series(1, 800) g;
DELETE FROM hd WHERE id <= 450;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM hd WHERE k = 7;
RESET enable_seqscan;
RESET enable_bitmapscan;
INSERT INTO hd SELECT g, 7 FROM generate_series(801, 850) g;
-- VACUUM then removes the dead entries left on the overflow page, whose
-- dead-tuples hint it clears (DELETE with clear_dead_marking).
VACUUM hd;

-- An index built on a table believed to hold 30000 rows: the metapage is
-- laid out for 768 buckets (a multi-phase splitpoint), written as FPIs.
CREATE TABLE hb (k int);
INSERT INTO hb SELECT g FROM generate_series(1, 50) g;
UPDATE pg_class SET relpages = 1, reltuples = 30000 WHERE relname = 'hb';
CREATE INDEX hb_k ON hb USING hash (k) WITH (fillfactor = 10);
INSERT INTO hb SELECT g FROM generate_series(51, 300) g;

-- An unlogged table's index: INIT_META_PAGE and INIT_BITMAP_PAGE on the
-- init fork.
CREATE UNLOGGED TABLE hu (k int);
CREATE INDEX hu_k ON hu USING hash (k);
