"""`pagectl wal-verify`: our native redo checked against the verification
images a real Postgres 15 writes with `wal_consistency_checking = 'all'`."""

from __future__ import annotations

import json
import subprocess

from fixtures.postgres import PgServer


def _verify(pagectl_bin, pg_wal, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(pagectl_bin), "wal-verify", str(pg_wal), *args], capture_output=True, text=True, timeout=300
    )


def test_wal_verify_heap_workload(pg_bindir, pagectl_bin) -> None:
    server = PgServer(pg_bindir)
    try:
        server.init()
        with open(server.datadir / "postgresql.conf", "a") as conf:
            conf.write("wal_consistency_checking = 'all'\nfull_page_writes = on\nwal_keep_size = 1024\n")
        server.start()
        start_lsn = server.sql("SELECT pg_current_wal_lsn()")[0][0]
        for statement in [
            "CREATE TABLE t (id int PRIMARY KEY, v text)",
            "INSERT INTO t SELECT g, repeat('x', g % 50) FROM generate_series(1, 3000) g",
            "UPDATE t SET v = v || 'y' WHERE id % 3 = 0",
            "DELETE FROM t WHERE id % 7 = 0",
            "VACUUM t",
            "CREATE SEQUENCE s",
            "SELECT nextval('s') FROM generate_series(1, 100)",
        ]:
            server.sql(statement)
        server.sql("CHECKPOINT")
        server.stop()
        pg_wal = server.datadir / "pg_wal"
        result = _verify(pagectl_bin, pg_wal, "--start", start_lsn)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert set(summary) == {"records", "blocks_checked", "matched", "mismatched", "unsupported", "by_record"}
        assert summary["mismatched"] == 0, summary
        for record in ("Heap/INSERT", "Heap/UPDATE", "Heap/DELETE", "Sequence/LOG"):
            assert summary["by_record"].get(record, {}).get("matched", 0) > 0, (record, summary["by_record"])

        # Not a WAL directory: a clear error and exit status 2.
        result = _verify(pagectl_bin, server.base_dir / "nowhere")
        assert result.returncode == 2, result
        assert "Error:" in result.stderr
        # A bad LSN argument is a usage error.
        result = _verify(pagectl_bin, pg_wal, "--start", "zzz")
        assert result.returncode == 2, result
    finally:
        server.cleanup()
