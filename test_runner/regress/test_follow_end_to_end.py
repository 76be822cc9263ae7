"""End to end: the page server imports a running Postgres 15 primary and
follows it through pgbench and the transactional SQL mix (subtransactions,
2PC, rewrites, CREATE DATABASE with both strategies, large objects), with a
page server restart under load and a primary restart. At two LSNs every
WAL-logged page of the cluster read through the page service equals the
primary's (masked), and a stock postgres started from a full basebackup —
of the main timeline and of a branch at the older LSN — answers queries
exactly as the primary did at that LSN and passes ``pg_amcheck``. Run with
and without data checksums."""

from __future__ import annotations

import threading

import pytest

from fixtures.follow import compare_cluster, current_lsn, wait_caught_up
from fixtures.pagestream import PageServiceConnection
from fixtures.postgres import PgServer
from fixtures.utils import format_lsn, random_id
from fixtures.workloads import WORKLOADS, pgbench, sql_workload

SLOT = "e2e_slot"
DATABASES = ("postgres", "mix_wal", "mix_from_copy")


def snapshot(pg: PgServer) -> dict:
    """Row count and digest of every permanent user table and materialized
    view, per database, plus the large object and the prepared transaction
    list; sequences separately (see ``sequences``)."""
    out: dict = {}
    for db in DATABASES:
        tables = pg.sql(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm') AND c.relpersistence = 'p' ORDER BY 1",
            dbname=db,
        )
        for (name,) in tables:
            out[(db, name)] = pg.sql(
                f'SELECT count(*), md5(coalesce(string_agg(t::text, \',\' ORDER BY t::text), \'\')) FROM "{name}" t',
                dbname=db,
            )[0]
    out["lo"] = pg.sql("SELECT md5(lo_get(424242))")[0]
    out["prepared"] = pg.sql("SELECT gid FROM pg_prepared_xacts ORDER BY 1")
    return out


def sequences(pg: PgServer) -> dict:
    return {
        name: value
        for name, value in pg.sql("SELECT sequencename, coalesce(last_value, 0) FROM pg_sequences ORDER BY 1")
    }


def check_restored(pg_bindir, tar: bytes, expected: dict, expected_seqs: dict) -> None:
    """A stock postgres on the basebackup: same snapshot, sequences at or
    past the primary's values (Postgres logs them ahead), heap and B-tree
    structure intact, every page's checksum correct when the cluster has
    them, and the prepared transaction resolvable."""
    server = PgServer(pg_bindir).restore(tar, max_prepared_transactions="10", autovacuum="off")
    try:
        server.start()
        assert snapshot(server) == expected
        restored = sequences(server)
        assert restored.keys() == expected_seqs.keys()
        for name, value in expected_seqs.items():
            assert restored[name] >= value, (name, restored[name], value)
        amcheck = server._run(
            "pg_amcheck",
            ["-h", str(server.socket_dir), "-p", str(server.port), "-U", "postgres", "--all", "--install-missing",
             "--heapallindexed", "--no-dependent-toast"],
            check=False,
        )
        assert amcheck.returncode == 0, amcheck.stdout[-3000:] + amcheck.stderr[-3000:]
        for (gid,) in expected["prepared"]:
            server.sql(f"COMMIT PREPARED '{gid}'")
        assert server.sql("SELECT count(*) FROM acct WHERE note = 'kept prepared'")[0][0] == len(expected["prepared"])
        log = server.log_text()
        assert "checksum" not in log and "PANIC" not in log, log[-3000:]
    finally:
        server.cleanup()


def checkpoint_and_compare(ps, pg: PgServer, pagectl_bin, tenant: str, timeline: str) -> int:
    """Checkpoints the (idle) primary, waits for ingest to reach its LSN and
    compares every WAL-logged page there; returns that LSN."""
    pg.sql("CHECKPOINT")
    lsn = current_lsn(pg)
    wait_caught_up(ps.http, tenant, timeline, lsn)
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline)
        assert compare_cluster(pagectl_bin, conn, pg, lsn) > 1000
    return lsn


@pytest.mark.time_limit(900)
@pytest.mark.parametrize("checksums", [False, True], ids=["plain", "checksums"])
def test_follow_primary_end_to_end(pageserver_factory, pg_bindir, pagectl_bin, checksums) -> None:
    ps = pageserver_factory({"wait_lsn_timeout": "20s"}).start()
    pg = PgServer(pg_bindir)
    try:
        pg.init(["--data-checksums"] if checksums else [], max_prepared_transactions="10", autovacuum="off").start()
        pgbench(pg, "-i", "-s", "1", "-q")
        tenant = ps.http.tenant_create(compaction_period="0s", gc_period="0s")
        timeline = random_id()
        ps.http.timeline_import_from_postgres(tenant, timeline, pg.connstr(), SLOT)

        sql_workload(WORKLOADS / "mix.sql")(pg)
        pgbench(pg, "-c", "2", "-t", "200", "-n")
        # One transaction stays prepared: its state lives in pg_twophase
        # after the checkpoint and must come back in the basebackup.
        pg.sql("BEGIN; INSERT INTO acct (id, bal, note) VALUES (20001, 1, 'kept prepared'); PREPARE TRANSACTION 'e2e_kept'")
        expected1, seqs1 = snapshot(pg), sequences(pg)
        assert expected1["prepared"] == [("e2e_kept",)]
        lsn1 = checkpoint_and_compare(ps, pg, pagectl_bin, tenant, timeline)

        # A page server restart while the primary is busy: it resumes from
        # its disk_consistent_lsn and catches up.
        errors: list[BaseException] = []

        def run_load() -> None:
            try:
                pgbench(pg, "-c", "2", "-T", "8", "-n")
            except BaseException as e:  # reported by the main thread
                errors.append(e)

        load = threading.Thread(target=run_load)
        load.start()
        try:
            ps.restart()
        finally:
            load.join()
        assert not errors, errors
        # The primary restarts: the walreceiver reconnects.
        pg.stop()
        pg.start()
        pg.sql("UPDATE pgbench_accounts SET filler = 'after restart' WHERE aid % 50 = 0")
        pg.sql("DELETE FROM pgbench_history WHERE mtime < now() - interval '3 seconds'")
        pg.sql("UPDATE in_wal SET v = v || '!' WHERE id % 5 = 0", dbname="mix_from_copy")
        pg.sql("VACUUM")
        expected2, seqs2 = snapshot(pg), sequences(pg)
        lsn2 = checkpoint_and_compare(ps, pg, pagectl_bin, tenant, timeline)

        branch = random_id()
        ps.http.timeline_create(tenant, branch, ancestor_timeline_id=timeline, ancestor_start_lsn=format_lsn(lsn1))
        with PageServiceConnection(ps.pg_addr) as conn:
            main_tar = conn.fullbackup(tenant, timeline, lsn2)
        with PageServiceConnection(ps.pg_addr) as conn:
            branch_tar = conn.fullbackup(tenant, branch, lsn1)
        assert expected1 != expected2
        check_restored(pg_bindir, main_tar, expected2, seqs2)
        check_restored(pg_bindir, branch_tar, expected1, seqs1)
    finally:
        pg.cleanup()
