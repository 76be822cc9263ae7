-- BRIN workload for the native redo conformance check (pg_redo). Run with
-- psql against a PostgreSQL 15 server configured with
-- wal_consistency_checking = 'all' and full_page_writes = on, then verify
-- the server's WAL with pg_redo's verify_wal_dir.
--
-- Produces every BRIN record type: CREATE_INDEX; INSERT and INSERT+INIT
-- (build, summarisation of new ranges, re-summarisation into unused line
-- pointers); SAMEPAGE_UPDATE (summaries widened by inserts); UPDATE and
-- UPDATE+INIT (summaries that outgrow their page: text minmax values that get
-- longer, minmax-multi ranges collecting values; tuples evacuated from a
-- regular page the revmap grows into); REVMAP_EXTEND (more than 1360 ranges
-- with pages_per_range = 1); DESUMMARIZE.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- One row per heap page (a 5000-byte uncompressed column), so that many
-- one-page ranges cost few heap records.
CREATE TABLE br (id int, t text, b box, pad text);
ALTER TABLE br ALTER COLUMN pad SET STORAGE PLAIN;
INSERT INTO br
  SELECT g, 'v' || g, box(point(g, g), point(g + 1, g + 2)), repeat('p', 5000)
  FROM generate_series(1, 1500) g;

-- 1500 ranges need two revmap pages: the second one lands on a regular page
-- that must first be evacuated.
CREATE INDEX br_id ON br USING brin (id) WITH (pages_per_range = 1);
CREATE INDEX br_t ON br USING brin (t) WITH (pages_per_range = 4);
CREATE INDEX br_box ON br USING brin (b box_inclusion_ops) WITH (pages_per_range = 8);
CREATE INDEX br_multi ON br USING brin (id int4_minmax_multi_ops) WITH (pages_per_range = 16);

-- Rows in new heap pages are in unsummarised ranges; VACUUM and
-- brin_summarize_new_values summarise them.
INSERT INTO br
  SELECT g, 'v' || g, box(point(g, g), point(g + 1, g + 2)), repeat('p', 5000)
  FROM generate_series(1501, 1700) g;
SELECT brin_summarize_new_values('br_id') >= 0;
VACUUM br;

-- Free heap pages inside summarised ranges, then insert rows whose values
-- widen the summaries there: longer text maxima grow br_t's tuples (cross-
-- page updates once their page is full), new distinct values grow the
-- minmax-multi summaries, new boxes widen the inclusion summaries.
DELETE FROM br WHERE id % 2 = 0;
VACUUM br;
INSERT INTO br
  SELECT -g, 'z' || repeat('y', 120 + g % 50) || g,
         box(point(-g, -g), point(g * 3, g * 3)), repeat('q', 5000)
  FROM generate_series(1, 700) g;

-- Narrow rows, several per page, updated in place (same heap page, so the
-- same range): the updated values keep widening one summary per range.
CREATE TABLE bn (id int, t text, v int) WITH (fillfactor = 40);
INSERT INTO bn SELECT g, 'a' || g, g FROM generate_series(1, 6000) g;
CREATE INDEX bn_t ON bn USING brin (t) WITH (pages_per_range = 1);
CREATE INDEX bn_v ON bn USING brin (v int4_minmax_multi_ops(values_per_range = 64))
  WITH (pages_per_range = 2);
UPDATE bn SET t = 'm' || repeat('x', 60) || id, v = (v * 7919) % 1000003 WHERE id % 5 = 0;
UPDATE bn SET t = 'z' || repeat('w', 150) || id, v = -(v % 100000) * 13 WHERE id % 7 = 0;

-- Desummarise ranges (revmap entry cleared, tuple removed leaving an unused
-- line pointer) and summarise them again (tuples placed into those slots).
SELECT brin_desummarize_range('bn_t', b) FROM generate_series(0, 60, 3) b;
SELECT brin_desummarize_range('br_id', b) FROM generate_series(0, 1600, 7) b;
SELECT brin_desummarize_range('br_t', b) FROM generate_series(0, 400, 4) b;
SELECT brin_summarize_range('bn_t', b) FROM generate_series(0, 60, 3) b;
SELECT brin_summarize_new_values('br_id') >= 0;
SELECT brin_summarize_new_values('br_t') >= 0;

-- An index built on an empty table and then filled: summarisation of every
-- range by VACUUM.
CREATE TABLE be (id int, ts timestamptz);
CREATE INDEX be_idx ON be USING brin (id, ts) WITH (pages_per_range = 2);
INSERT INTO be SELECT g, '2022-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 12000) g;
VACUUM be;
INSERT INTO be SELECT g, now() FROM generate_series(1, 2000) g;
VACUUM be;

-- Queries through the indexes.
SET enable_seqscan = off;
SELECT count(*) FROM br WHERE id BETWEEN 100 AND 120;
SELECT count(*) FROM bn WHERE t > 'y';
SELECT count(*) FROM be WHERE id < 50;
