-- Heap workload for the native redo conformance check (pg_redo).
--
-- Run with psql against a PostgreSQL 15 server configured with
-- wal_consistency_checking = 'all' and full_page_writes = on, then verify
-- the server's WAL with pg_redo's verify_wal_dir (pagectl wal-verify).
-- Produces every Heap and Heap2 record type that changes pages (INSERT incl.
-- TOAST and speculative inserts, UPDATE HOT / non-HOT / cross-page /
-- prefix-suffix compressed, DELETE incl. partition moves, LOCK incl.
-- multixacts, LOCK_UPDATED, CONFIRM, INPLACE, PRUNE, VACUUM, FREEZE_PAGE,
-- VISIBLE, MULTI_INSERT incl. COPY FREEZE) plus Sequence/LOG.
--
-- psql variables:
--   sock      directory of the server's Unix socket (for a dblink session)
--   copyfile  a path the server may write and read (COPY round trip)

\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;

-- Plain inserts into a table without indexes: every update can be HOT.
CREATE TABLE h (id int, v text, pad text) WITH (fillfactor = 60);
INSERT INTO h SELECT g, 'v' || g, repeat('x', 40) FROM generate_series(1, 3000) g;

-- TOAST: values stored out of line, uncompressed.
CREATE TABLE tt (id int PRIMARY KEY, big text);
ALTER TABLE tt ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO tt SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 30) g;
UPDATE tt SET big = repeat(md5((id + 1)::text), 150) WHERE id % 3 = 0;
DELETE FROM tt WHERE id % 5 = 0;

-- HOT updates (same page, fillfactor leaves room).
UPDATE h SET v = v || 'u' WHERE id % 4 = 0;
UPDATE h SET v = v || 'w' WHERE id % 4 = 0;

-- Wide rows with a changed middle column: same-page updates whose new
-- tuple is logged with prefix/suffix taken from the old one (wal_level
-- replica only; under logical the full tuple is logged).
CREATE TABLE w (id int, a text, mid text, z text) WITH (fillfactor = 50);
INSERT INTO w SELECT g, repeat('a', 100), 'm' || g, repeat('z', 100) FROM generate_series(1, 200) g;
UPDATE w SET mid = 'n' || id WHERE id % 2 = 0;

-- Non-HOT updates: indexed key changes, and growth that moves rows to
-- other (often new) pages.
CREATE TABLE k (id int PRIMARY KEY, val int, note text);
INSERT INTO k SELECT g, g, 'n' FROM generate_series(1, 2000) g;
UPDATE k SET id = id + 100000 WHERE id % 10 = 0;
UPDATE h SET pad = repeat('y', 400) WHERE id % 9 = 0;

-- Deletes, and a rolled back insert / update (dead tuples for pruning).
DELETE FROM h WHERE id % 11 = 0;
BEGIN; INSERT INTO h SELECT g, 'r', 'r' FROM generate_series(1, 50) g; ROLLBACK;
BEGIN; UPDATE k SET val = -val WHERE id % 7 = 0; ROLLBACK;

-- Row locks of every strength.
BEGIN; SELECT count(*) FROM (SELECT 1 FROM k WHERE id < 50 FOR UPDATE) s; COMMIT;
BEGIN; SELECT count(*) FROM (SELECT 1 FROM k WHERE id BETWEEN 50 AND 80 FOR SHARE) s; COMMIT;
BEGIN; SELECT count(*) FROM (SELECT 1 FROM k WHERE id BETWEEN 81 AND 90 FOR KEY SHARE) s; COMMIT;
BEGIN; SELECT count(*) FROM (SELECT 1 FROM k WHERE id BETWEEN 91 AND 99 FOR NO KEY UPDATE) s; COMMIT;

-- Multixacts: a lock by the transaction and a stronger one by a
-- subtransaction.
BEGIN;
SELECT count(*) FROM (SELECT 1 FROM k WHERE id BETWEEN 100 AND 140 FOR SHARE) s;
SAVEPOINT a;
SELECT count(*) FROM (SELECT 1 FROM k WHERE id BETWEEN 100 AND 140 FOR UPDATE) s;
COMMIT;

-- Two concurrent sessions (dblink): shared locks held by both (multixact),
-- and a key-share lock on rows another session is updating, which follows
-- the update chain (Heap2/LOCK_UPDATED).
SELECT dblink_connect('c', format('host=%s dbname=postgres user=postgres', :'sock'));
SELECT dblink_exec('c', 'BEGIN');
SELECT count(*) FROM dblink('c', 'SELECT 1 FROM k WHERE id BETWEEN 200 AND 260 FOR SHARE') AS t(x int);
BEGIN; SELECT count(*) FROM (SELECT 1 FROM k WHERE id BETWEEN 200 AND 260 FOR SHARE) s; COMMIT;
SELECT dblink_exec('c', 'UPDATE k SET val = val + 1 WHERE id BETWEEN 300 AND 330');
BEGIN; SELECT count(*) FROM (SELECT 1 FROM k WHERE id BETWEEN 300 AND 330 FOR KEY SHARE) s; COMMIT;
SELECT dblink_exec('c', 'COMMIT');
SELECT dblink_disconnect('c');

-- Speculative insertion (INSERT ... ON CONFLICT): Heap/INSERT + CONFIRM.
INSERT INTO k SELECT g, g, 'upsert' FROM generate_series(1990, 2100) g
  ON CONFLICT (id) DO UPDATE SET note = 'conflict';
INSERT INTO k VALUES (5000, 1, 'x') ON CONFLICT DO NOTHING;

-- Cross-partition update: the old row's delete is a partition move.
CREATE TABLE p (id int, part int) PARTITION BY LIST (part);
CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
CREATE TABLE p2 PARTITION OF p FOR VALUES IN (2);
INSERT INTO p SELECT g, 1 FROM generate_series(1, 100) g;
UPDATE p SET part = 2 WHERE id % 3 = 0;

-- Old-tuple logging under wal_level = logical.
CREATE TABLE ri (id int, v text);
ALTER TABLE ri REPLICA IDENTITY FULL;
INSERT INTO ri SELECT g, 'x' FROM generate_series(1, 100) g;
UPDATE ri SET v = 'y' WHERE id % 2 = 0;
DELETE FROM ri WHERE id % 5 = 0;

-- Sequences.
CREATE SEQUENCE s;
SELECT count(nextval('s')) FROM generate_series(1, 100);
ALTER SEQUENCE s RESTART WITH 7;
SELECT nextval('s');
SELECT setval('s', 1000);

-- COPY: multi-inserts into new pages (+INIT) and into a partly filled page.
CREATE TABLE m (id int, v text);
INSERT INTO m VALUES (0, 'first');
COPY (SELECT g, 'row ' || g FROM generate_series(1, 5000) g) TO :'copyfile';
COPY m FROM :'copyfile';
COPY m FROM :'copyfile';
-- COPY FREEZE into a table created in the same transaction.
BEGIN;
CREATE TABLE mf (id int, v text);
COPY mf FROM :'copyfile' WITH (FREEZE);
COMMIT;

-- Opportunistic pruning: reading pages full of dead tuples.
SELECT count(*) FROM h;
SELECT count(*) FROM k;

CHECKPOINT;
-- VACUUM: prune (Heap2/PRUNE), mark unused (Heap2/VACUUM, two passes with
-- an index), all-visible (Heap2/VISIBLE), pg_class updates (Heap/INPLACE).
VACUUM h;
VACUUM k;
VACUUM tt;
VACUUM w;
-- Clear visibility map bits with changes, then set them again.
UPDATE h SET v = 'again' WHERE id % 13 = 0;
DELETE FROM k WHERE id % 17 = 0;
BEGIN; SELECT count(*) FROM (SELECT 1 FROM k WHERE id BETWEEN 1000 AND 1100 FOR UPDATE) s; COMMIT;
INSERT INTO m SELECT g, 'late' FROM generate_series(1, 10) g;
VACUUM h;
VACUUM k;
-- Freezing (Heap2/FREEZE_PAGE, VISIBLE with all-frozen).
VACUUM (FREEZE) h;
VACUUM (FREEZE) k;
VACUUM (FREEZE) m;
-- Locks on frozen rows clear the all-frozen bit.
BEGIN; SELECT count(*) FROM (SELECT 1 FROM k WHERE id BETWEEN 1200 AND 1300 FOR SHARE) s; COMMIT;
UPDATE m SET v = 'after freeze' WHERE id % 100 = 0;

-- Table truncation at the end of a VACUUM (Storage/TRUNCATE clears the
-- tail of the last VM page), then re-extension and new VM bits on that page.
-- The first VACUUM empties the tail pages without truncating; the second
-- marks them all-visible in the VM and then cuts them off.
CREATE TABLE tr (id int, v text);
INSERT INTO tr SELECT g, repeat('t', 100) FROM generate_series(1, 6000) g;
VACUUM tr;
DELETE FROM tr WHERE id > 3000;
VACUUM (TRUNCATE false) tr;
VACUUM tr;
INSERT INTO tr SELECT g, 'again' FROM generate_series(1, 3000) g;
VACUUM tr;

-- Rewrites: VACUUM FULL logs the new relation as XLOG/FPI images.
VACUUM FULL h;
UPDATE h SET v = 'post-full' WHERE id % 20 = 0;
TRUNCATE p1;
SELECT nextval('s');
CHECKPOINT;
