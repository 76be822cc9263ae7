-- SP-GiST workload for the native redo conformance check (pg_redo).
--
-- Run with psql against a PostgreSQL 15 server configured with
-- wal_consistency_checking = 'all' and full_page_writes = on (autovacuum
-- off), then verify the server's WAL with pg_redo's verify_wal_dir.
-- Produces every SPGist record type: ADD_LEAF (new pages, chains, DEAD
-- chain heads replaced, nulls tree), MOVE_LEAFS, ADD_NODE (in place and
-- moved to another page), SPLIT_TUPLE (postfix on the same and on another
-- page), PICKSPLIT (root splits, splits into new leaf and inner pages),
-- VACUUM_LEAF (dead, placeholder, moved and re-chained tuples),
-- VACUUM_ROOT (roots that are still leaves, incl. the nulls root) and
-- VACUUM_REDIRECT (redirects whose inserting transactions are gone, and
-- trailing placeholders removed).
--
-- Indexes are created on empty tables so that every change after the build
-- is WAL-logged as SPGist records (a build itself logs whole pages).

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- Points: quad tree (the default opclass) and k-d tree, plus NULL keys
-- (the separate nulls tree) and heavy duplicates (allTheSame inner tuples).
CREATE TABLE sp_pt (id int, p point);
CREATE INDEX sp_pt_quad ON sp_pt USING spgist (p);
CREATE INDEX sp_pt_kd ON sp_pt USING spgist (p kd_point_ops);
INSERT INTO sp_pt SELECT g, point(g % 71, g / 71) FROM generate_series(1, 2000) g;
INSERT INTO sp_pt SELECT g, point((g * 7919) % 1000 / 10.0, (g * 104729) % 1000 / 10.0)
  FROM generate_series(3001, 5000) g;
-- Enough NULLs to split the nulls tree's root.
INSERT INTO sp_pt SELECT g, NULL FROM generate_series(6001, 6300) g;
INSERT INTO sp_pt SELECT g, NULL FROM generate_series(20001, 21000) g;
INSERT INTO sp_pt SELECT g, point(5, 5) FROM generate_series(6301, 7300) g;
-- Many small transactions: each leaves redirects with its own xid.
INSERT INTO sp_pt SELECT g, point(g % 13 + 0.5, g % 17 + 0.5) FROM generate_series(7301, 7400) g;
INSERT INTO sp_pt SELECT g, point(g % 19 + 0.25, g % 23 + 0.25) FROM generate_series(7401, 7500) g;

-- Text: a radix tree. Long shared prefixes get split when a key diverges
-- inside them (SPLIT_TUPLE); new first characters at a level add nodes to
-- an existing inner tuple (ADD_NODE).
CREATE TABLE sp_txt (id int, t text);
CREATE INDEX sp_txt_idx ON sp_txt USING spgist (t);
INSERT INTO sp_txt SELECT g, 'common/prefix/shared/' || md5(g::text) FROM generate_series(1, 1500) g;
INSERT INTO sp_txt SELECT g, 'common/pre' || g FROM generate_series(1501, 1700) g;
INSERT INTO sp_txt SELECT g, 'common/' || chr(97 + g % 26) || g FROM generate_series(1701, 2300) g;
INSERT INTO sp_txt SELECT g, chr(65 + g % 58) || repeat('z', g % 7) || g FROM generate_series(2301, 3300) g;
INSERT INTO sp_txt SELECT g, 'common/prefix/sh' || g FROM generate_series(3301, 3400) g;
INSERT INTO sp_txt SELECT g, 'c' || g FROM generate_series(3401, 3500) g;
INSERT INTO sp_txt SELECT g, repeat('long-key-', 20) || g FROM generate_series(3501, 3700) g;
INSERT INTO sp_txt SELECT g, NULL FROM generate_series(3701, 3750) g;
-- One key at a time in separate transactions: more ADD_NODE / SPLIT_TUPLE.
INSERT INTO sp_txt VALUES (3751, 'common/prefix/shared/zzzz');
INSERT INTO sp_txt VALUES (3752, 'common/prefix/sharing');
INSERT INTO sp_txt VALUES (3753, 'commun');
INSERT INTO sp_txt VALUES (3754, 'common/prefix/shared/' || chr(200));
INSERT INTO sp_txt VALUES (3755, 'long-key-long-key-x');
INSERT INTO sp_txt VALUES (3756, 'q-new-branch');

-- Inner tuples that outgrow their page: 150 key groups first split on two
-- labels each, then keys with up to 94 new labels per group arrive in
-- random order. Each new label adds a node; once an inner page is full the
-- enlarged tuple moves to another (sometimes new) page, leaving a redirect,
-- with its parent on the old page or on a third one.
CREATE TABLE sp_nodes (id int, t text);
CREATE INDEX sp_nodes_idx ON sp_nodes USING spgist (t);
INSERT INTO sp_nodes SELECT g, 'G' || lpad((g % 150)::text, 3, '0') || '/' || chr(97 + (g / 200) % 2)
    || md5(g::text) || md5((g + 1)::text)
  FROM generate_series(1, 4500) g;
INSERT INTO sp_nodes SELECT g, 'G' || lpad((g % 150)::text, 3, '0') || '/' || chr(33 + (g * 7) % 94)
    || md5(g::text)
  FROM (SELECT g FROM generate_series(10001, 20000) g ORDER BY md5(g::text)) s;

-- inet (radix tree on address bits), ranges (quad tree on bounds), boxes.
CREATE TABLE sp_misc (id int, a inet, r int4range, b box);
CREATE INDEX sp_misc_inet ON sp_misc USING spgist (a inet_ops);
CREATE INDEX sp_misc_range ON sp_misc USING spgist (r);
CREATE INDEX sp_misc_box ON sp_misc USING spgist (b);
INSERT INTO sp_misc SELECT g,
    ('10.' || (g % 256) || '.' || (g / 256 % 256) || '.' || (g % 7) || '/' || (16 + g % 17))::inet,
    int4range(g % 500, g % 500 + g % 37 + 1),
    box(point(g % 100, g % 77), point(g % 100 + g % 5 + 1, g % 77 + g % 3 + 1))
  FROM generate_series(1, 2500) g;
INSERT INTO sp_misc SELECT g, ('2001:db8::' || to_hex(g))::inet, 'empty'::int4range, NULL
  FROM generate_series(2501, 2700) g;

-- A small index whose root stays a leaf page (VACUUM_ROOT), with NULLs.
CREATE TABLE sp_small (id int, p point);
CREATE INDEX sp_small_idx ON sp_small USING spgist (p);
INSERT INTO sp_small SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE point(g, g) END
  FROM generate_series(1, 60) g;

-- Deletions, then VACUUM: VACUUM_LEAF on leaf pages, VACUUM_ROOT on root
-- leaves, and VACUUM_REDIRECT for redirects left by the inserts above (the
-- inserting transactions have all ended, so their redirects can go).
DELETE FROM sp_pt WHERE id % 3 = 0 OR id BETWEEN 6301 AND 7000;
DELETE FROM sp_txt WHERE id % 2 = 0 OR id BETWEEN 1 AND 400;
DELETE FROM sp_misc WHERE id % 4 <> 1;
DELETE FROM sp_small WHERE id % 2 = 0;
DELETE FROM sp_nodes WHERE id % 50 = 0;
VACUUM sp_pt;
VACUUM sp_txt;
VACUUM sp_misc;
VACUUM sp_small;
VACUUM sp_nodes;

-- Delete whole regions so that chains die entirely (DEAD tuples stay where
-- a parent links to them) and pages empty out for reuse.
DELETE FROM sp_pt WHERE p <@ box(point(0, 0), point(40, 30));
DELETE FROM sp_txt WHERE t LIKE 'common/prefix/shared/%';
VACUUM sp_pt;
VACUUM sp_txt;

-- Reinsert into the emptied regions: DEAD chain heads are replaced in
-- place, placeholders reused, free pages re-initialised.
INSERT INTO sp_pt SELECT g, point(g % 40 + 0.125, g % 30 + 0.125) FROM generate_series(10001, 12000) g;
INSERT INTO sp_txt SELECT g, 'common/prefix/shared/' || md5((g * 3)::text) FROM generate_series(10001, 11200) g;
INSERT INTO sp_small SELECT g, point(g, -g) FROM generate_series(61, 70) g;

-- Redirects created by the reinserts are removed by a later VACUUM.
VACUUM sp_pt;
VACUUM sp_txt;
DELETE FROM sp_pt;
DELETE FROM sp_small;
VACUUM sp_pt;
VACUUM sp_small;
VACUUM sp_pt;
CHECKPOINT;
