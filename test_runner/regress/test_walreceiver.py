"""Import from a running Postgres 15 and follow it: base backup over a
replication connection, WAL streamed through a physical slot, pages equal
to the primary's, restarts of either side, and the sources the walreceiver
must refuse (another cluster, a timeline switch)."""

from __future__ import annotations

import pytest

from fixtures.follow import compare_relation, current_lsn, relation_files, wait_caught_up
from fixtures.http import PageserverApiError
from fixtures.pagestream import PageServiceConnection
from fixtures.postgres import PgServer
from fixtures.utils import parse_lsn, random_id, wait_until

SLOT = "pageserver_test"


@pytest.fixture
def ps(pageserver_factory):
    return pageserver_factory({"wait_lsn_timeout": "20s"}).start()


def import_primary(ps, pg: PgServer, slot: str | None = SLOT) -> tuple[str, str, dict]:
    tenant = ps.http.tenant_create(compaction_period="0s", gc_period="0s")
    timeline = random_id()
    info = ps.http.timeline_import_from_postgres(tenant, timeline, pg.connstr(), slot)
    return tenant, timeline, info


def test_import_and_follow(ps, pg, pagectl_bin) -> None:
    pg.sql("CREATE TABLE before_import (id int PRIMARY KEY, v text)")
    pg.sql("INSERT INTO before_import SELECT g, repeat('a', g % 100) FROM generate_series(1, 5000) g")
    tenant, timeline, info = import_primary(ps, pg)
    start = parse_lsn(info["initdb_lsn"])
    assert start > 0
    assert parse_lsn(info["min_readable_lsn"]) >= start, info
    assert info["wal_source_connstr"] and "password" not in info["wal_source_connstr"]
    # The slot exists and holds WAL from the backup on.
    (restart_lsn,) = pg.sql(f"SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '{SLOT}'")[0]
    assert parse_lsn(restart_lsn) <= start

    pg.sql("CREATE TABLE after_import (id int, v text)")
    pg.sql("INSERT INTO after_import SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
    pg.sql("UPDATE before_import SET v = v || 'b' WHERE id % 3 = 0")
    pg.sql("DELETE FROM before_import WHERE id % 7 = 0")
    pg.sql("VACUUM before_import")
    pg.sql("CHECKPOINT")
    lsn = current_lsn(pg)
    info = wait_caught_up(ps.http, tenant, timeline, lsn)
    assert "streaming" in info["walreceiver_status"], info["walreceiver_status"]
    assert info["current_logical_size"] > 20000 * 40
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline)
        for relname in ("before_import", "after_import", "before_import_pkey", "pg_class"):
            rel, path = relation_files(pg, relname)
            assert compare_relation(pagectl_bin, conn, rel, path, lsn) > 0, relname

    # Flushed data is reported back: the slot releases WAL up to it.
    ps.http.timeline_checkpoint(tenant, timeline, compact=False)
    flushed = parse_lsn(ps.http.timeline_detail(tenant, timeline)["disk_consistent_lsn"])

    def slot_advanced():
        (r,) = pg.sql(f"SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '{SLOT}'")[0]
        return parse_lsn(r) >= flushed - 8192

    wait_until(slot_advanced, 20, description="the slot to follow disk_consistent_lsn")

    # A restart resumes from disk_consistent_lsn and catches up.
    pg.sql("INSERT INTO after_import SELECT g, 'x' FROM generate_series(1, 3000) g")
    ps.restart()
    pg.sql("INSERT INTO after_import SELECT g, 'y' FROM generate_series(1, 3000) g")
    pg.sql("CHECKPOINT")
    lsn = current_lsn(pg)
    wait_caught_up(ps.http, tenant, timeline, lsn)
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline)
        rel, path = relation_files(pg, "after_import")
        compare_relation(pagectl_bin, conn, rel, path, lsn)

    # The primary restarts: the walreceiver reconnects.
    pg.stop()
    pg.start()
    pg.sql("INSERT INTO after_import VALUES (0, 'after restart')")
    pg.sql("CHECKPOINT")
    lsn = current_lsn(pg)
    wait_caught_up(ps.http, tenant, timeline, lsn)
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline)
        rel, path = relation_files(pg, "after_import")
        compare_relation(pagectl_bin, conn, rel, path, lsn)

    # Stop following: ingest stops, the data stays.
    info = ps.http.wal_source_delete(tenant, timeline)
    assert info["walreceiver_status"] == "disconnected"
    assert info["wal_source_connstr"] is None
    pg.sql("INSERT INTO after_import VALUES (1, 'not followed')")
    assert parse_lsn(ps.http.timeline_detail(tenant, timeline)["last_record_lsn"]) == lsn
    ps.restart()
    assert ps.http.timeline_detail(tenant, timeline)["walreceiver_status"] == "disconnected"


def test_import_without_slot_and_bad_sources(ps, pg, pg_bindir) -> None:
    tenant, timeline, info = import_primary(ps, pg, slot=None)
    pg.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
    wait_caught_up(ps.http, tenant, timeline, current_lsn(pg))

    # Bad requests are refused before anything is stored.
    for body in (
        {"connstr": "host=127.0.0.1 port=1 user=postgres sslmode=verify-full"},
        {"connstr": "user=postgres bogus=1"},
        {"connstr": pg.connstr(), "slot_name": "Bad Slot"},
        {"connstr": pg.connstr(), "unknown": 1},
    ):
        r = ps.http.put(f"/v1/tenant/{tenant}/timeline/{timeline}/wal_source", json=body)
        assert r.status_code == 400, (body, r.text)
    with pytest.raises(PageserverApiError) as e:
        ps.http.timeline_import_from_postgres(tenant, random_id(), "host=127.0.0.1 port=1 user=postgres")
    assert e.value.response.status_code == 500 and "connect" in e.value.response.text
    assert len(ps.http.timeline_list(tenant)) == 1, "a failed import left a timeline behind"

    # Another cluster: refused for good, with the reason.
    other = PgServer(pg_bindir)
    try:
        other.init().start()
        ps.http.wal_source_put(tenant, timeline, other.connstr())

        def stopped():
            status = ps.http.timeline_detail(tenant, timeline)["walreceiver_status"]
            return status if status.startswith("stopped") else None

        status = wait_until(stopped, 20, description="the walreceiver to refuse another cluster")
        assert "different cluster" in status and "system identifier" in status, status
        assert "pageserver_walreceiver_stops_total" in ps.http.metrics()
    finally:
        other.cleanup()

    # Back to the right source: it catches up again.
    ps.http.wal_source_put(tenant, timeline, pg.connstr())
    pg.sql("INSERT INTO t SELECT g FROM generate_series(1, 1000) g")
    wait_caught_up(ps.http, tenant, timeline, current_lsn(pg))


def test_timeline_switch_is_refused(ps, pg, pg_bindir) -> None:
    tenant, timeline, _ = import_primary(ps, pg, slot=None)
    pg.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g")
    wait_caught_up(ps.http, tenant, timeline, current_lsn(pg))
    # A standby of the primary, promoted: a new Postgres timeline.
    standby = PgServer(pg_bindir)
    try:
        standby._run(
            "pg_basebackup",
            ["-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-D", str(standby.datadir), "-X", "stream", "-R"],
        )
        with open(standby.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {standby.port}\nunix_socket_directories = '{standby.socket_dir}'\n")
        standby.start()
        wait_until(lambda: standby.sql("SELECT pg_is_in_recovery()")[0][0], 30)
        standby.sql("SELECT pg_promote()")
        wait_until(lambda: not standby.sql("SELECT pg_is_in_recovery()")[0][0], 30)
        ps.http.wal_source_put(tenant, timeline, standby.connstr())

        def stopped():
            status = ps.http.timeline_detail(tenant, timeline)["walreceiver_status"]
            return status if status.startswith("stopped") else None

        status = wait_until(stopped, 30, description="the walreceiver to refuse the timeline switch")
        assert "timeline switch" in status, status
    finally:
        standby.cleanup()
