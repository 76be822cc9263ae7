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
-- Loaded before the index exists (the build itself is logged as plain
-- page images): key 1 gets a posting tree of several leaves, keys 10..309
-- posting lists inside their entry tuples, every id its own key.
COPY (SELECT g, ARRAY[1, g % 300 + 10, g + 100000] FROM generate_series(1, 24000) g)
  TO :'copyfile';
COPY ga FROM :'copyfile';
CREATE INDEX ga_idx ON ga USING gin (a) WITH (fastupdate = off);

-- Appends to the key-1 posting tree (leaf recompression, leaf splits,
-- downlink inserts into its internal root), posting lists that grow in
-- their entry tuples (delete + insert of the tuple), new keys (entry leaf
-- inserts and splits, downlinks into the entry tree's internal pages), and
-- a new key present in every new row that outgrows its entry tuple and
-- becomes a posting tree.
INSERT INTO ga SELECT g, ARRAY[1, g % 300 + 10, g + 100000, 7]
  FROM generate_series(24001, 27000) g;

-- Empty the middle of the key-1 posting tree: VACUUM rewrites its leaves
-- (VACUUM_DATA_LEAF_PAGE), deletes the emptied ones (DELETE_PAGE) and
-- rewrites entry leaves whose keys lost items (VACUUM_PAGE).
DELETE FROM ga WHERE id BETWEEN 3001 AND 21000 OR id % 7 = 0;
VACUUM ga;

-- New rows land in freed heap space: their TIDs go into the middle of
-- the posting trees (items added to existing segments, segments replaced
-- and split).
INSERT INTO ga SELECT g, ARRAY[1, g % 300 + 10, 7] FROM generate_series(30001, 31500) g;
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
CREATE TABLE gf (id int, doc tsvector, j jsonb) WITH (fillfactor = 10);
CREATE INDEX gf_doc ON gf USING gin (doc) WITH (gin_pending_list_limit = 256);
CREATE INDEX gf_j ON gf USING gin (j jsonb_path_ops);
-- Small rows append to the tail list page; a long document needs a
-- sublist of several pages; exceeding the 256 kB limit makes the
-- inserting backend move the pending list into the tree.
INSERT INTO gf SELECT g,
    to_tsvector('simple', 'common w' || (g % 50) || ' x' || g),
    jsonb_build_object('a', g % 10, 'b', g)
  FROM generate_series(1, 3000) g;
INSERT INTO gf SELECT 5000,
    (SELECT to_tsvector('simple', string_agg('long' || i, ' ')) FROM generate_series(1, 1500) i),
    '{"big": true}';
INSERT INTO gf SELECT g,
    to_tsvector('simple', 'common w' || (g % 50)),
    jsonb_build_object('a', g % 10)
  FROM generate_series(3001, 4000) g;
-- Explicit cleanup, then VACUUM (cleanup, bulk delete, statistics).
SELECT gin_clean_pending_list('gf_j') >= 0;
DELETE FROM gf WHERE id % 4 = 0;
INSERT INTO gf SELECT g, to_tsvector('simple', 'late common'), '{"late": 1}'
  FROM generate_series(4001, 4200) g;
VACUUM gf;
-- Pages freed by the pending-list cleanup are reused for new list pages.
INSERT INTO gf SELECT g,
    (SELECT to_tsvector('simple', string_agg('again' || i, ' ')) FROM generate_series(1, 600) i),
    '{"again": 1}'
  FROM generate_series(4201, 4205) g;
VACUUM gf;
