-- Transactional mix for the native redo conformance check and the
-- follow-a-primary tests: subtransactions (more than fit the subxid cache),
-- two-phase commit (committed, rolled back, across a checkpoint),
-- CREATE DATABASE with both strategies and DROP DATABASE, CLUSTER,
-- VACUUM FULL, table rewrites, TRUNCATE, unlogged tables, materialized
-- views, large objects and sequences past their WAL-logged cache.
--
-- Needs max_prepared_transactions > 0. psql variables: sock, copyfile
-- (accepted for symmetry with the other workloads; not used).

CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL, note text);
INSERT INTO acct SELECT g, 0, 'n' || g FROM generate_series(1, 3000) g;

-- Subtransactions: 200 of them in one transaction (overflows the 64-entry
-- subxid cache, so pg_subtrans is used), every third rolled back.
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    BEGIN
      UPDATE acct SET bal = bal + 1 WHERE id = i;
      IF i % 3 = 0 THEN RAISE EXCEPTION 'roll back %', i; END IF;
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
  END LOOP;
END $$;

-- Nested savepoints, released and rolled back, in a committed and in an
-- aborted transaction.
BEGIN;
SAVEPOINT a; INSERT INTO acct VALUES (10001, 1, 'sa');
SAVEPOINT b; UPDATE acct SET bal = bal + 10 WHERE id BETWEEN 300 AND 400;
RELEASE b;
SAVEPOINT c; DELETE FROM acct WHERE id BETWEEN 500 AND 520; ROLLBACK TO c;
COMMIT;
BEGIN;
SAVEPOINT a; INSERT INTO acct VALUES (10002, 1, 'aborted');
RELEASE a;
UPDATE acct SET bal = -1 WHERE id < 100;
ROLLBACK;

-- Two-phase commit: commit and rollback of prepared transactions, one
-- with subtransactions, one that stays prepared across a checkpoint (its
-- state moves to a pg_twophase file).
BEGIN; UPDATE acct SET bal = bal - 5 WHERE id < 50; PREPARE TRANSACTION 'mix_p1';
BEGIN; SAVEPOINT s; INSERT INTO acct VALUES (10003, 3, 'p2'); RELEASE s;
SAVEPOINT t; INSERT INTO acct VALUES (10004, 4, 'p2'); PREPARE TRANSACTION 'mix_p2';
COMMIT PREPARED 'mix_p1';
ROLLBACK PREPARED 'mix_p2';
BEGIN; INSERT INTO acct VALUES (10005, 5, 'p3'); PREPARE TRANSACTION 'mix_p3';
CHECKPOINT;
COMMIT PREPARED 'mix_p3';

-- Sequences: more calls than one WAL-logged batch of 32, a reset, a cycle.
CREATE SEQUENCE mix_seq;
SELECT count(nextval('mix_seq')) FROM generate_series(1, 100);
SELECT setval('mix_seq', 1000);
CREATE SEQUENCE mix_cycle MAXVALUE 5 CYCLE;
SELECT count(nextval('mix_cycle')) FROM generate_series(1, 12);

-- Rewrites: CLUSTER, VACUUM FULL, a column added with a volatile default,
-- and TRUNCATE of a table created in the same and in an earlier transaction.
CREATE INDEX acct_bal ON acct (bal);
CLUSTER acct USING acct_bal;
VACUUM FULL acct;
ALTER TABLE acct ADD COLUMN r float8 DEFAULT random();
CREATE TABLE tr (x int);
INSERT INTO tr SELECT generate_series(1, 5000);
TRUNCATE tr;
INSERT INTO tr SELECT generate_series(1, 100);
BEGIN; CREATE TABLE tr2 (x int); INSERT INTO tr2 SELECT generate_series(1, 100); TRUNCATE tr2; COMMIT;

-- Unlogged table (its init fork is logged, its data is not) and a
-- materialized view refreshed twice.
CREATE UNLOGGED TABLE ul (id int PRIMARY KEY, v text);
INSERT INTO ul SELECT g, 'u' FROM generate_series(1, 500) g;
CREATE MATERIALIZED VIEW mv AS SELECT id % 10 AS k, count(*) AS n FROM acct GROUP BY 1;
CREATE UNIQUE INDEX mv_k ON mv (k);
UPDATE acct SET bal = bal + 1 WHERE id % 10 = 1;
REFRESH MATERIALIZED VIEW mv;
REFRESH MATERIALIZED VIEW CONCURRENTLY mv;

-- Large objects.
SELECT lo_from_bytea(424242, decode(repeat('ab', 20000), 'hex')) IS NOT NULL;
SELECT lo_put(424242, 100, '\x00ff'::bytea);
SELECT lo_unlink(lo_from_bytea(0, '\x01'::bytea));

-- Databases: WAL-logged copy (the default) of template1, file copy, a
-- WAL-logged copy of a database with data of its own, and drops.
CREATE DATABASE mix_wal STRATEGY wal_log;
CREATE DATABASE mix_copy STRATEGY file_copy;
\c mix_wal
CREATE TABLE in_wal (id int PRIMARY KEY, v text);
INSERT INTO in_wal SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
\c postgres
CREATE DATABASE mix_from_wal TEMPLATE mix_wal STRATEGY wal_log;
CREATE DATABASE mix_from_copy TEMPLATE mix_wal STRATEGY file_copy;
\c mix_from_copy
UPDATE in_wal SET v = 'c' WHERE id % 4 = 0;
\c postgres
DROP DATABASE mix_copy;
DROP DATABASE mix_from_wal;
