-- B-tree workload for the native redo conformance check (pg_redo).
--
-- Run with psql against a PostgreSQL 15 server configured with
-- wal_consistency_checking = 'all' and full_page_writes = on (autovacuum
-- off), then verify the server's WAL with pg_redo's verify_wal_dir.
-- Produces every Btree record type that changes pages: INSERT_LEAF,
-- INSERT_UPPER, INSERT_META (a split of the fast root after it moved down),
-- SPLIT_L and SPLIT_R (ascending, random and duplicate keys), NEWROOT,
-- INSERT_POST (posting-list splits: new heap TIDs inside existing posting
-- lists), DEDUP, DELETE (simple deletion of LP_DEAD items and bottom-up
-- deletion of version churn), VACUUM (with posting-list updates),
-- MARK_PAGE_HALFDEAD, UNLINK_PAGE, UNLINK_PAGE_META, META_CLEANUP, and
-- REUSE_PAGE (no block: checked by a WAL scan).

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- Ascending and random keys: leaf and internal splits on both sides, new
-- roots, downlink inserts.
CREATE TABLE bt (id int, v text) WITH (fillfactor = 100);
CREATE INDEX bt_id ON bt (id);
CREATE INDEX bt_v ON bt (v);
INSERT INTO bt SELECT g, md5(g::text) FROM generate_series(1, 12000) g;

-- Duplicates: deduplication, then new heap TIDs inside posting lists
-- (space freed in early heap pages is reused by the second insert).
CREATE TABLE dup (k int, pad int) WITH (fillfactor = 100);
CREATE INDEX dup_k ON dup (k);
INSERT INTO dup SELECT g % 7, g FROM generate_series(1, 12000) g;
DELETE FROM dup WHERE pad % 3 <> 0;
VACUUM dup;
INSERT INTO dup SELECT g % 7, g FROM generate_series(1, 9000) g;

-- Splits inside posting lists: key 0's leaves are full of posting lists
-- whose TID ranges interleave with key 1's rows; deleting key 1 frees heap
-- slots (not key 0's index space), so new key-0 rows get TIDs inside key
-- 0's posting lists on full pages.
CREATE TABLE dup2 (k int, pad int) WITH (fillfactor = 100);
CREATE INDEX dup2_k ON dup2 (k);
INSERT INTO dup2 SELECT g % 2, g FROM generate_series(1, 8000) g;
DELETE FROM dup2 WHERE k = 1;
VACUUM dup2;
INSERT INTO dup2 SELECT 0, g FROM generate_series(1, 3000) g;

-- Long keys (suffix truncation keeps long pivots): few items per page, so
-- internal pages split too.
CREATE TABLE wide (v text);
CREATE INDEX wide_v ON wide (v);
INSERT INTO wide SELECT repeat('w', 300) || lpad(((g * 7919) % 1500)::text, 6, '0')
    FROM generate_series(1, 1500) g;

-- Two leaves under a root: deleting the left one leaves its right sibling
-- alone on the level, so the fast root moves down (UNLINK_PAGE_META); the
-- fast root then splits (INSERT_META).
CREATE TABLE fast (id int);
CREATE INDEX fast_id ON fast (id);
INSERT INTO fast SELECT g FROM generate_series(1, 600) g;
DELETE FROM fast WHERE id <= 590;
VACUUM fast;
INSERT INTO fast SELECT g FROM generate_series(601, 1400) g;

-- Simple deletion: index scans mark dead items LP_DEAD, a later insert
-- into the full page deletes them.
CREATE TABLE kill (id int, pad text) WITH (fillfactor = 100);
CREATE INDEX kill_id ON kill (id);
INSERT INTO kill SELECT g, 'x' FROM generate_series(1, 4000) g;
DELETE FROM kill WHERE id % 2 = 0;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM kill WHERE id > 0;
RESET enable_seqscan;
RESET enable_bitmapscan;
INSERT INTO kill SELECT g, 'y' FROM generate_series(1, 4000) g WHERE g % 2 = 0;

-- Bottom-up deletion: non-HOT updates (the indexed column changes) leave
-- version churn on the primary key's leaves.
CREATE TABLE churn (id int PRIMARY KEY, v int) WITH (fillfactor = 100);
CREATE INDEX churn_v ON churn (v);
INSERT INTO churn SELECT g, g FROM generate_series(1, 2000) g;
UPDATE churn SET v = v + 1 WHERE id <= 400;
UPDATE churn SET v = v + 1 WHERE id <= 400;
UPDATE churn SET v = v + 1 WHERE id <= 400;
UPDATE churn SET v = v + 1 WHERE id <= 400;
UPDATE churn SET v = v + 1 WHERE id <= 400;
UPDATE churn SET v = v + 1 WHERE id <= 400;

-- Page deletion: a whole key range goes, VACUUM deletes its pages (half
-- dead, then unlinked); deleting almost everything moves the fast root
-- down (UNLINK_PAGE_META); the next VACUUM records the deleted pages in the
-- metapage (META_CLEANUP).
DELETE FROM bt WHERE id BETWEEN 1000 AND 11000;
VACUUM bt;
CREATE TABLE shrink (id int);
CREATE INDEX shrink_id ON shrink (id);
INSERT INTO shrink SELECT g FROM generate_series(1, 30000) g;
DELETE FROM shrink WHERE id > 50;
VACUUM shrink;
VACUUM shrink;
-- The fast root is now low; growing again splits it (INSERT_META).
INSERT INTO shrink SELECT g FROM generate_series(30001, 36000) g;

-- Deleted pages become recyclable once no snapshot can see them: burn a
-- few transaction ids, VACUUM again (into the free space map), then grow
-- the index into them (REUSE_PAGE).
SELECT txid_current();
SELECT txid_current();
SELECT txid_current();
VACUUM bt;
VACUUM bt;
INSERT INTO bt SELECT g, md5((g * 7)::text) FROM generate_series(1000, 11000) g;
VACUUM bt;
