"""The SQL workloads of `test_runner/redo_workloads/` against a real
PostgreSQL 15 with `wal_consistency_checking = 'all'`, then `pagectl
wal-verify` over its WAL: every block with a verification image must match
our native redo after masking, and no record type may be unsupported.

CI runs every SQL workload (heap, btree, hash, gin, gist, spgist, brin,
bloom, the transactional mix) and a short pgbench run; `RUN_SLOW=1` adds a
longer pgbench run at a larger scale."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from fixtures.postgres import PgServer
from fixtures.workloads import WORKLOADS, pgbench_workload, sql_workload


def run_workload(
    pg_bindir: Path, pagectl_bin: Path, workload: Callable[[PgServer], None], checksums: bool, timing: bool = False
) -> dict:
    """Runs ``workload`` against a fresh server with consistency checking on,
    then ``pagectl wal-verify`` over the WAL it wrote; returns the summary."""
    server = PgServer(pg_bindir)
    try:
        server.init(
            ["--wal-segsize=16"] + (["--data-checksums"] if checksums else []),
            wal_consistency_checking="'all'",
            full_page_writes="on",
            autovacuum="off",
            wal_keep_size="'4GB'",
            max_wal_size="'4GB'",
            checkpoint_timeout="'1h'",
            max_prepared_transactions="10",
        )
        server.start()
        server.sql("SELECT pg_switch_wal()")
        server.sql("CHECKPOINT")
        start = server.sql("SELECT pg_current_wal_insert_lsn()")[0][0]
        workload(server)
        server.stop()
        verify = subprocess.run(
            [str(pagectl_bin), "wal-verify", str(server.datadir / "pg_wal"), "--start", start]
            + (["--timing"] if timing else []),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        summary = json.loads(verify.stdout.strip().splitlines()[-1])
        summary["_output"] = verify.stdout[-4000:] + verify.stderr[-2000:]
        summary["_timing"] = [line.split() for line in verify.stdout.splitlines() if line.startswith("redo ")]
        summary["_returncode"] = verify.returncode
        return summary
    finally:
        server.cleanup()


def workloads() -> list:
    return sorted(WORKLOADS.glob("*.sql"))


def check_summary(summary: dict) -> None:
    out = summary.pop("_output")
    assert summary["mismatched"] == 0, out
    assert summary["unsupported"] == 0, {k: v for k, v in summary["by_record"].items() if v["unsupported"]}
    assert summary.pop("_returncode") == 0, out
    assert summary["matched"] > 100, summary


@pytest.mark.time_limit(900)
@pytest.mark.parametrize("sql_file", workloads(), ids=lambda f: f.stem)
def test_redo_workload(pg_bindir, pagectl_bin, sql_file) -> None:
    checksums = sql_file.stem in ("heap", "btree", "hash", "mix")
    check_summary(run_workload(pg_bindir, pagectl_bin, sql_workload(sql_file), checksums))


@pytest.mark.time_limit(900)
@pytest.mark.parametrize(
    "scale,transactions",
    [pytest.param(1, 300, id="short"), pytest.param(10, 20000, id="long", marks=pytest.mark.slow)],
)
def test_redo_pgbench(pg_bindir, pagectl_bin, scale, transactions) -> None:
    summary = run_workload(pg_bindir, pagectl_bin, pgbench_workload(scale, transactions), checksums=True, timing=True)
    by_record = summary["by_record"]
    # `--timing`: a line per record type redone, and the total.
    timed = {fields[1]: int(fields[2]) for fields in summary.pop("_timing")}
    assert timed.get("Heap/HOT_UPDATE", 0) > 0 and timed["all"] == sum(v for k, v in timed.items() if k != "all"), timed
    check_summary(summary)
    # pgbench's UPDATEs are mostly HOT, its INSERTs into the history table plain.
    assert by_record["Heap/HOT_UPDATE"]["matched"] > 0, by_record
    assert by_record["Heap/INSERT"]["matched"] > 0, by_record
