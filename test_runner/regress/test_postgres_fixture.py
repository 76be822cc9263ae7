"""Smoke test of the ``pg`` fixture: a real PostgreSQL 15 primary."""

from __future__ import annotations

from fixtures.postgres import PgServer


def test_postgres_15_primary(pg: PgServer) -> None:
    (version,) = pg.sql("SELECT version()")[0]
    assert "PostgreSQL 15" in version
    assert pg.sql("SHOW wal_level") == [("replica",)]
    assert pg.sql("SHOW max_wal_senders") == [("10",)]
    assert pg.sql("SHOW fsync") == [("off",)]
    assert pg.sql("SELECT current_user") == [("postgres",)]
    assert pg.sql("SELECT inet_server_port()") == [(pg.port,)]


def test_postgres_sql_roundtrip(pg: PgServer) -> None:
    pg.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
    pg.sql("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g")
    assert pg.sql("SELECT count(*), sum(id) FROM t") == [(100, 5050)]
    assert pg.sql("SELECT v FROM t WHERE id = %s", (42,)) == [("row 42",)]
    # The server is a primary that can stream WAL.
    assert pg.sql("SELECT pg_is_in_recovery()") == [(False,)]
    lsn_before = pg.sql("SELECT pg_current_wal_lsn()")[0][0]
    pg.sql("INSERT INTO t VALUES (101, 'more')")
    assert pg.sql("SELECT pg_current_wal_lsn() > %s::pg_lsn", (lsn_before,)) == [(True,)]
