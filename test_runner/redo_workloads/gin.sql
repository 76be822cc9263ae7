-- GIN workload for the native redo conformance check (pg_redo).
--
-- Run with psql against a PostgreSQL 15 server configured with
-- wal_consistency_checking = 'all', full_page_writes = on and autovacuum
-- off, then verify the server's WAL with pg_redo's verify_wal_dir.
-- Produces every Gin record type: CREATE_PTREE, INSERT (entry leaf and
-- internal pages, posting-tree leaf recompression and internal pages),
-- SPLIT (entry and posting tree, root and non-root, leaf and internal),
-- VACUUM_PAGE, VACUUM_DATA_LEAF_PAGE, DELETE_PAGE, UPDATE_META_PAGE (tail
-- append, new sublist, statistics only), INSERT_LISTPAGE and
-- DELETE_LISTPAGE.
--
-- Heap tables use fillfactor 10: their pages stay nearly empty, so the
-- verification image every heap record carries is small, while TIDs stay
-- dense enough for large posting trees.
--
-- psql variables:
--   copyfile  a path the server may write and read (COPY round trip)

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

------------------------------------------------------------------------
-- 1. int[] with fastupdate = off: direct inserts.
------------------------------------------------------------------------
CREATE TABLE ga (id int, a int[]) WITH (fillfactor = 10);
-- Loaded before the index exists (the build is logged as plain page
-- images, and packs posting-tree leaves full): key 1 gets a posting tree
-- of three leaves, key 3 (every 16th row) a posting list just small
-- enough for its entry tuple, every id its own key.
COPY (SELECT g, CASE WHEN g % 16 = 0 THEN ARRAY[1, 3, g + 100000]
                     ELSE ARRAY[1, g + 100000] END
      FROM generate_series(1, 16000) g)
  TO :'copyfile';
COPY ga FROM :'copyfile';
CREATE INDEX ga_idx ON ga USING gin (a) WITH (fastupdate = off);

-- Non-HOT updates put new row versions on the same (nearly empty) heap
-- pages: their TIDs go into the middle of the key-1 posting tree, whose
-- full leaves split (posting-tree SPLIT, then a downlink INSERT into its
-- internal root); key 5 grows a posting list in its entry tuple.
UPDATE ga SET a = a || 5 WHERE id % 20 = 0;

-- From here on the first change of each page carries a full-page image
-- (restored, not compared); later changes replay on top of it.
CHECKPOINT;

-- Appends: to the key-1 posting tree (leaf recompression), to key 3's
-- posting list until it outgrows its entry tuple (after about 700 rows)
-- and becomes a posting tree (entry tuple replaced each time, then
-- CREATE_PTREE), and new keys (entry leaf inserts and splits, downlinks
-- into the entry tree's root).
INSERT INTO ga SELECT g, ARRAY[1, 3, g + 100000] FROM generate_series(16001, 17000) g;

-- Empty the middle leaves of the key-1 posting tree: VACUUM rewrites its
-- leaves (VACUUM_DATA_LEAF_PAGE), deletes the emptied ones (DELETE_PAGE)
-- and rewrites entry leaves whose keys lost items (VACUUM_PAGE).
DELETE FROM ga WHERE id BETWEEN 6001 AND 15000;
VACUUM ga;

-- New rows land in freed heap space: their TIDs go into the middle of
-- the posting trees (items added to existing segments, segments replaced
-- and split).
INSERT INTO ga SELECT g, ARRAY[1, 3] FROM generate_series(20001, 20400) g;
-- Thin out the posting trees once more (their leaves already have their
-- post-checkpoint image, so these vacuum records are compared).
DELETE FROM ga WHERE id % 5 = 0 AND id > 15000;
VACUUM ga;

------------------------------------------------------------------------
-- 2. Long text keys, fastupdate = off: an entry tree three levels deep,
--    so internal entry pages split too.
------------------------------------------------------------------------
CREATE TABLE gt (id int, t text[]);
CREATE INDEX gt_idx ON gt USING gin (t) WITH (fastupdate = off);
INSERT INTO gt
  SELECT g, ARRAY[(SELECT string_agg(md5(g::text || ':' || i), '') FROM generate_series(1, 25) i)]
  FROM generate_series(1, 700) g ORDER BY md5(g::text);
DELETE FROM gt WHERE id % 3 = 0;
VACUUM gt;

------------------------------------------------------------------------
-- 3. tsvector and jsonb with fastupdate = on: the pending list.
------------------------------------------------------------------------
CREATE TABLE gf (id int, doc tsvector) WITH (fillfactor = 10);
CREATE INDEX gf_doc ON gf USING gin (doc) WITH (gin_pending_list_limit = 64);
-- Small rows append to the tail list page, or start a new one-page
-- sublist when it is full; a long document needs a sublist of several
-- pages; exceeding the 64 kB limit makes the inserting backend move the
-- pending list into the tree.
INSERT INTO gf SELECT g, to_tsvector('simple', 'common w' || (g % 50) || ' x' || g)
  FROM generate_series(1, 1000) g;
INSERT INTO gf SELECT 5000,
    (SELECT to_tsvector('simple', string_agg('long' || i, ' ')) FROM generate_series(1, 1500) i);
INSERT INTO gf SELECT g, to_tsvector('simple', 'common w' || (g % 50))
  FROM generate_series(1001, 1300) g;
-- Explicit cleanup, deletes, then VACUUM (cleanup, bulk delete, statistics).
SELECT gin_clean_pending_list('gf_doc') >= 0;
DELETE FROM gf WHERE id % 4 = 0;
INSERT INTO gf SELECT g, to_tsvector('simple', 'late common') FROM generate_series(1301, 1400) g;
VACUUM gf;
-- Pages freed by the pending-list cleanup are reused for new list pages.
INSERT INTO gf SELECT g,
    (SELECT to_tsvector('simple', string_agg('again' || i, ' ')) FROM generate_series(1, 600) i)
  FROM generate_series(1401, 1405) g;
VACUUM gf;

CREATE TABLE gj (id int, j jsonb);
CREATE INDEX gj_idx ON gj USING gin (j);
CREATE INDEX gj_path ON gj USING gin (j jsonb_path_ops);
INSERT INTO gj SELECT g, jsonb_build_object('a', g % 10, 'b', g, 'c', ARRAY[g % 3, g % 7])
  FROM generate_series(1, 300) g;
DELETE FROM gj WHERE id % 5 = 0;
VACUUM gj;
