#!/usr/bin/env python3
"""Decode + ingest throughput of pgbench WAL, side by side with PostgreSQL
15's own redo of the same WAL (crash recovery from a base backup).

    scripts/bench-ingest.py [--scale 10] [--duration 60] [--clients 4]
                            [--pagectl target/release/pagectl] [--budget-mb 0]
                            [--bulk-mb 0] [--repeat 1]

1. initdb a cluster, `pgbench -i -s SCALE`, `pg_basebackup -X none` (the
   starting point), then `pgbench -T DURATION` (the WAL to replay) and,
   with `--bulk-mb N`, about N MB more WAL of bulk inserts (1.5 kB rows,
   for the memory-bound check over gigabytes of WAL), stop.
2. PostgreSQL: the backup plus that WAL in its pg_wal, started with no
   signal file: crash recovery replays from the backup's checkpoint to the
   end of WAL; the figures are PostgreSQL's own "redo done … system usage"
   log line (CPU user/system, elapsed).
3. Ours: `pagectl ingest-bench` on the same backup and WAL (decode +
   ingest into a throwaway storage, then flush).

With `--repeat N` both replays run N times, alternating, and the median
run of each is reported (the per-run CPU seconds are in the JSON).

Prints both, records/s and records per CPU-second, and the ratio, and the
last line is one JSON object. Needs PostgreSQL 15 binaries
(/usr/lib/postgresql/15/bin) and a release build of pagectl. Runs as root
by using the postgres OS user for the server programs.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runner:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(base, pw.pw_uid, pw.pw_gid)

    def run(self, program: str, *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
        argv = [str(PG_BIN / program), *args]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=check, capture_output=capture, text=True, cwd=self.base)


def log_line(path: Path, pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        m = re.search(pattern, text)
        if m:
            return m
        time.sleep(0.2)
    raise SystemExit(f"{pattern!r} not in {path} after {timeout}s:\n{text[-3000:]}")


def postgres_redo(r: Runner, base: Path, backup: Path, primary: Path, replay: Path) -> tuple[str, float, float, float]:
    """Crash recovery of `backup` plus the primary's WAL in a copy at
    `replay`: (redo end LSN, user s, system s, elapsed s) from PostgreSQL's
    own "redo done" log line."""
    shutil.copytree(backup, replay, symlinks=True)
    for seg in sorted((primary / "pg_wal").iterdir()):
        if re.fullmatch(r"[0-9A-F]{24}", seg.name):
            shutil.copy2(seg, replay / "pg_wal" / seg.name)
    if r.as_root:
        subprocess.run(["chown", "-R", "postgres:postgres", str(replay)], check=True)
    os.chmod(replay, 0o700)
    with open(replay / "postgresql.conf", "a") as conf:
        conf.write(f"port = {free_port()}\n")
    log = base / f"{replay.name}.log"
    r.run("pg_ctl", "-D", str(replay), "-l", str(log), "-w", "-t", "3600", "start")
    m = log_line(
        log,
        r"redo done at (\S+) system usage: CPU: user: ([\d.]+) s, system: ([\d.]+) s, elapsed: ([\d.]+) s",
        3600,
    )
    r.run("pg_ctl", "-D", str(replay), "-m", "immediate", "-w", "stop", check=False)
    return m.group(1), float(m.group(2)), float(m.group(3)), float(m.group(4))


def our_ingest(args: argparse.Namespace, backup: Path, primary: Path, work: Path) -> dict:
    """`pagectl ingest-bench` of the same backup and WAL: its JSON line."""
    out = subprocess.run(
        [args.pagectl, "ingest-bench", "--workdir", str(work), "--ephemeral-budget-mb", str(args.budget_mb), str(backup), str(primary / "pg_wal")],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"pagectl ingest-bench failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_by(runs: list, key):
    """The run with the median `key` (the lower middle for an even count)."""
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--pagectl", default="target/release/pagectl")
    ap.add_argument("--budget-mb", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--bulk-mb", type=int, default=0, help="append about this much WAL of bulk inserts")
    ap.add_argument("--repeat", type=int, default=1, help="replay both this many times, alternating; medians")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    os.chmod(base, 0o755)
    r = Runner(base)
    primary, backup = base / "primary", base / "backup"
    port = free_port()
    try:
        r.run("initdb", "-D", str(primary), "-U", "postgres", "--auth=trust", "--no-sync")
        with open(primary / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\n"
                "wal_level = replica\nmax_wal_size = '64GB'\nwal_keep_size = '64GB'\n"
                "checkpoint_timeout = '1h'\nautovacuum = off\nfsync = off\n"
            )
        r.run("pg_ctl", "-D", str(primary), "-l", str(base / "primary.log"), "-w", "start")
        conn = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        print(f"pgbench -i -s {args.scale} ...", file=sys.stderr)
        r.run("pgbench", *conn, "-i", "-q", "-s", str(args.scale), "postgres")
        r.run("pg_basebackup", *conn, "-D", str(backup), "-X", "none", "-c", "fast")
        print(f"pgbench -T {args.duration} -c {args.clients} ...", file=sys.stderr)
        tps = r.run("pgbench", *conn, "-c", str(args.clients), "-j", "2", "-T", str(args.duration), "postgres").stdout
        if args.bulk_mb:
            psql = ["psql", "-X", "-q", *conn, "-d", "postgres", "-c"]
            r.run(*psql, "CREATE TABLE bulk (id int, pad text)")
            # About 1.6 kB of WAL per row (below the TOAST threshold, so
            # not compressed); 200k rows per statement.
            rows = args.bulk_mb * 1_000_000 // 1600
            for first in range(0, rows, 200_000):
                last = min(first + 200_000, rows)
                r.run(*psql, f"INSERT INTO bulk SELECT g, repeat('x', 1500) FROM generate_series({first}, {last - 1}) g")
            print(f"bulk: {rows} rows", file=sys.stderr)
        r.run("pg_ctl", "-D", str(primary), "-m", "fast", "-w", "stop")

        # Both replays of the same WAL, alternating when repeated (the
        # machine's speed drifts over minutes; alternating exposes both to
        # the same drift), medians reported.
        pg_runs, our_runs = [], []
        # Each replay's output is deleted before the next one starts and
        # dirty pages are written back first: a replay of gigabytes of WAL
        # otherwise runs with the page cache full of the previous one's
        # files, and the kernel's reclaim is charged to it.
        for i in range(args.repeat):
            os.sync()
            pg_runs.append(postgres_redo(r, base, backup, primary, base / f"replay{i}"))
            shutil.rmtree(base / f"replay{i}", ignore_errors=True)
            os.sync()
            our_runs.append(our_ingest(args, backup, primary, base / f"work{i}"))
            shutil.rmtree(base / f"work{i}", ignore_errors=True)
            print(
                f"run {i + 1}: PostgreSQL {pg_runs[-1][1] + pg_runs[-1][2]:.2f} CPU-s, "
                f"ours {our_runs[-1]['ingest_cpu_s']:.2f} CPU-s",
                file=sys.stderr,
            )
        pg_end, pg_user, pg_sys, pg_elapsed = median_by(pg_runs, lambda p: p[1] + p[2])
        ours = median_by(our_runs, lambda o: o["ingest_cpu_s"])

        records = ours["records"]
        # "redo done at" names the start of the last record replayed.
        if ours["last_record_lsn"] != pg_end:
            print(f"warning: PostgreSQL's redo ended at {pg_end}, ours at {ours['last_record_lsn']}", file=sys.stderr)
        pg_cpu = pg_user + pg_sys
        result = {
            "scale": args.scale,
            "bulk_mb": args.bulk_mb,
            "budget_mb": args.budget_mb,
            "duration_s": args.duration,
        "repeat": args.repeat,
        "postgres_cpu_s_runs": [p[1] + p[2] for p in pg_runs],
        "pageserver_cpu_s_runs": [o["ingest_cpu_s"] for o in our_runs],
            "pgbench_tps": float(re.search(r"tps = ([\d.]+)", tps).group(1)) if "tps = " in tps else None,
            "records": records,
            "wal_bytes": ours["bytes"],
            "fpi_share": ours["fpi_bytes"] / max(ours["bytes"], 1),
            "postgres": {
                "redo_end": pg_end,
                "cpu_s": pg_cpu,
                "elapsed_s": pg_elapsed,
                "records_per_s": records / max(pg_elapsed, 1e-9),
                "records_per_cpu_s": records / max(pg_cpu, 1e-9),
                "mb_per_s": ours["bytes"] / max(pg_elapsed, 1e-9) / 1e6,
            },
            "pageserver": {
                "end_lsn": ours["end_lsn"],
                "cpu_s": ours["ingest_cpu_s"],
                "elapsed_s": ours["ingest_wall_s"],
                "records_per_s": ours["records_per_s"],
                "records_per_cpu_s": ours["records_per_cpu_s"],
                "mb_per_s": ours["mb_per_s"],
                "flush_s": ours["flush_wall_s"],
                "max_rss_kib": ours["max_rss_kib"],
            },
        }
        result["ratio_records_per_cpu_s"] = result["pageserver"]["records_per_cpu_s"] / result["postgres"]["records_per_cpu_s"]
        result["ratio_records_per_s"] = result["pageserver"]["records_per_s"] / result["postgres"]["records_per_s"]
        p, o = result["postgres"], result["pageserver"]
        print(
            f"{records} records, {ours['bytes'] / 1e6:.1f} MB WAL ({100 * result['fpi_share']:.0f} % FPI bytes)\n"
            f"PostgreSQL redo : {p['elapsed_s']:.2f} s, {p['cpu_s']:.2f} CPU-s, {p['records_per_s']:.0f} rec/s, "
            f"{p['records_per_cpu_s']:.0f} rec/CPU-s, {p['mb_per_s']:.1f} MB/s\n"
            f"pageserver      : {o['elapsed_s']:.2f} s, {o['cpu_s']:.2f} CPU-s, {o['records_per_s']:.0f} rec/s, "
            f"{o['records_per_cpu_s']:.0f} rec/CPU-s, {o['mb_per_s']:.1f} MB/s (+ flush {o['flush_s']:.2f} s), "
            f"peak RSS {o['max_rss_kib'] / 1024:.0f} MiB\n"
            f"ratio (records per CPU-second): {result['ratio_records_per_cpu_s']:.2f}x",
            file=sys.stderr,
        )
        print(json.dumps(result))
    finally:
        for d in [primary, *base.glob("replay*")]:
            if (d / "postmaster.pid").exists():
                r.run("pg_ctl", "-D", str(d), "-m", "immediate", "-w", "stop", check=False)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
