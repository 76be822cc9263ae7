"""Basebackups: the full form starts a stock postgres 15 directly, with the
data the cluster had at the backup LSN (latest, an older LSN, a branch at an
older LSN); the lazy form carries no relation data."""

from __future__ import annotations

import io
import tarfile

import pytest

from fixtures.follow import current_lsn, wait_caught_up
from fixtures.pagestream import PageServiceConnection, PgError
from fixtures.postgres import PgServer
from fixtures.utils import format_lsn, parse_lsn, random_id


@pytest.fixture
def ps(pageserver_factory):
    return pageserver_factory({"wait_lsn_timeout": "20s"}).start()


def fullbackup(ps, tenant: str, timeline: str, lsn: int | None = None) -> bytes:
    with PageServiceConnection(ps.pg_addr) as conn:
        return conn.fullbackup(tenant, timeline, lsn)


def started_from(pg_bindir, tar_bytes: bytes) -> PgServer:
    return PgServer(pg_bindir).restore(tar_bytes).start()


QUERIES = [
    "SELECT count(*), sum(id), md5(string_agg(v, ',' ORDER BY id)) FROM t",
    "SELECT count(*) FROM t2",
    "SELECT relname FROM pg_class WHERE relname LIKE 't%' AND relkind = 'r' ORDER BY 1",
    "SELECT count(*) FROM t WHERE id BETWEEN 100 AND 200",
    "SELECT nextval('s')",
]


def snapshot(pg: PgServer) -> list:
    return [pg.sql(q) for q in QUERIES]


def test_fullbackup_of_bootstrapped_timeline_starts(ps, pg_bindir) -> None:
    tenant = ps.http.tenant_create()
    timeline = random_id()
    ps.http.timeline_create(tenant, timeline, pg_version=15)
    server = started_from(pg_bindir, fullbackup(ps, tenant, timeline))
    try:
        assert server.sql("SELECT count(*) FROM pg_class")[0][0] > 300
        assert [r[0] for r in server.sql("SELECT datname FROM pg_database ORDER BY 1")] == [
            "postgres",
            "template0",
            "template1",
        ]
        # It writes: the new cluster is a normal primary.
        server.sql("CREATE TABLE x AS SELECT g FROM generate_series(1, 100) g")
        assert server.sql("SELECT count(*) FROM x")[0][0] == 100
        assert "PANIC" not in server.log_text() and "FATAL" not in server.log_text()
    finally:
        server.cleanup()


def test_fullbackup_at_lsns_and_branch_matches_primary(ps, pg, pg_bindir) -> None:
    pg.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    pg.sql("CREATE SEQUENCE s")
    pg.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g")
    tenant = ps.http.tenant_create(compaction_period="0s", gc_period="0s")
    timeline = random_id()
    ps.http.timeline_import_from_postgres(tenant, timeline, pg.connstr(), "fb_slot")

    pg.sql("UPDATE t SET v = v || 'x' WHERE id % 5 = 0")
    pg.sql("CREATE TABLE t2 AS SELECT g FROM generate_series(1, 500) g")
    pg.sql("SELECT nextval('s') FROM generate_series(1, 10)")
    lsn1 = current_lsn(pg)
    expected1 = snapshot(pg)
    # snapshot() itself advanced the sequence: what a copy at lsn1 sees is
    # the value after the 10 calls plus that one.
    pg.sql("DELETE FROM t WHERE id % 3 = 0")
    pg.sql("INSERT INTO t SELECT g, 'new' FROM generate_series(3001, 4000) g")
    pg.sql("VACUUM t")
    lsn2 = current_lsn(pg)
    expected2 = snapshot(pg)
    wait_caught_up(ps.http, tenant, timeline, lsn2)

    branch = random_id()
    ps.http.timeline_create(tenant, branch, ancestor_timeline_id=timeline, ancestor_start_lsn=format_lsn(lsn1))
    for tl, lsn, expected in [
        (timeline, None, expected2),
        (timeline, lsn2, expected2),
        (timeline, lsn1, expected1),
        (branch, None, expected1),
    ]:
        server = started_from(pg_bindir, fullbackup(ps, tenant, tl, lsn))
        try:
            got = snapshot(server)
            # Sequences: WAL runs 32 values ahead, so a copy resumes past the
            # last value the primary handed out (as after a crash).
            assert got[:-1] == expected[:-1], (tl, lsn)
            assert got[-1][0][0] > expected[-1][0][0] - 1, (got[-1], expected[-1])
            assert server.sql("SELECT count(*) FROM t WHERE v IS NULL")[0][0] == 0
        finally:
            server.cleanup()

    # Below the branch point of the branch, or past the data: errors.
    with PageServiceConnection(ps.pg_addr) as conn:
        with pytest.raises(PgError, match="branch point|minimum readable LSN"):
            conn.fullbackup(tenant, branch, lsn1 - 0x100)


def test_fullbackup_with_data_checksums(ps, pg_bindir) -> None:
    primary = PgServer(pg_bindir)
    try:
        primary._run(
            "initdb",
            ["-D", str(primary.datadir), "-U", "postgres", "--auth=trust", "--data-checksums", "--no-sync"],
        )
        with open(primary.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {primary.port}\nlisten_addresses = '127.0.0.1'\n")
            conf.write(f"unix_socket_directories = '{primary.socket_dir}'\nfsync = off\n")
        primary.start()
        primary.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
        tenant = ps.http.tenant_create()
        timeline = random_id()
        ps.http.timeline_import_from_postgres(tenant, timeline, primary.connstr())
        primary.sql("INSERT INTO t SELECT g, repeat('z', g % 300) FROM generate_series(1, 20000) g")
        primary.sql("UPDATE t SET v = 'u' WHERE id % 10 = 0")
        primary.sql("VACUUM t")
        lsn = current_lsn(primary)
        expected = primary.sql("SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t")
        wait_caught_up(ps.http, tenant, timeline, lsn)
        server = PgServer(pg_bindir).restore(fullbackup(ps, tenant, timeline), ignore_checksum_failure="off").start()
        try:
            assert server.sql("SHOW data_checksums")[0][0] == "on"
            # Full scans read every page and verify its checksum.
            assert server.sql("SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t") == expected
            server.sql("SET enable_seqscan = off")
            assert server.sql("SELECT count(*) FROM t WHERE id > 0")[0][0] == expected[0][0]
            server.sql("VACUUM t")
            assert "checksum" not in server.log_text(), server.log_text()[-2000:]
        finally:
            server.cleanup()
    finally:
        primary.cleanup()


def test_lazy_basebackup_contents(ps) -> None:
    tenant = ps.http.tenant_create()
    timeline = random_id()
    info = ps.http.timeline_create(tenant, timeline, pg_version=15)
    with PageServiceConnection(ps.pg_addr) as conn:
        raw = conn.basebackup(tenant, timeline)
        gz = conn.basebackup(tenant, timeline, gzip=True)
    names = tarfile.open(fileobj=io.BytesIO(raw)).getnames()
    assert "global/pg_control" in names and "pg_xact/0000" in names
    assert "base/1/PG_VERSION" in names and "global/pg_filenode.map" in names
    assert "neon.signal" in names and "postgresql.conf" not in names
    assert not any(n.startswith("base/1/1259") for n in names), "lazy backup has relation data"
    assert any(n.startswith("pg_wal/0000000100000000") for n in names)
    assert gz[:2] == b"\x1f\x8b"
    assert tarfile.open(fileobj=io.BytesIO(gz), mode="r:gz").getnames() == names
    signal = tarfile.open(fileobj=io.BytesIO(raw)).extractfile("neon.signal").read().decode()
    assert signal.startswith("PREV LSN: "), signal
    assert parse_lsn(info["last_record_lsn"]) > 0
