#!/usr/bin/env python3
"""Benchmarks GetPage through the page service (issue 6).

Starts a (release) pageserver with dev_mode in a temporary workdir and
loads a timeline from one of two sources:

- ``--pgbench-scale N``: a real PostgreSQL 15 primary (initdb, ``pgbench -i
  -s N``), imported over the replication protocol (``import_from_postgres``),
  followed until caught up; the blocks read are every block of
  ``pgbench_accounts`` and its primary key;
- otherwise ``--pages`` synthetic 8 KiB pages of one relation written
  through the dev-mode put.

Then it flushes and forces image layers, restarts the server (cold block
cache), and runs ``pagebench get-page-latest-lsn`` with random blocks.
Prints pagebench's output and the pageserver's CPU seconds over the run.
Runs the PostgreSQL programs as the ``postgres`` OS user when root.

    scripts/pagebench-run.py --bin-dir target/release --pgbench-scale 70 \\
        --connections 8 --queue-depth 1 --runtime 20
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REL = (1663, 1, 16384, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def pg_run(program: str, *args: str) -> str:
    argv = [str(PG_BIN / program), *args]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def pg_query(port: int, sql: str) -> str:
    return pg_run("psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", sql).strip()


def load_pgbench(base: str, tenant: str, timeline: str, scale: int, pg_dir: Path) -> tuple[list[str], int]:
    """Primary with pgbench data, imported and followed; returns pagebench
    ``--blocks`` arguments and the page count."""
    pg_dir.mkdir()
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(pg_dir, pw.pw_uid, pw.pw_gid)
    data, port = pg_dir / "data", free_port()
    pg_run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{pg_dir}'\n"
            "wal_level = replica\nfsync = off\nmax_wal_size = '8GB'\nautovacuum = off\n"
        )
    pg_run("pg_ctl", "-D", str(data), "-l", str(pg_dir / "pg.log"), "-w", "start")
    t0 = time.monotonic()
    pg_run("pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-i", "-q", "-s", str(scale), "postgres")
    print(f"pgbench -i -s {scale}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    t0 = time.monotonic()
    body = {
        "new_timeline_id": timeline,
        "pg_version": 15,
        "import_from_postgres": {"connstr": f"host=127.0.0.1 port={port} user=postgres", "slot_name": "pagebench"},
    }
    requests.post(f"{base}/tenant/{tenant}/timeline", json=body, timeout=3600).raise_for_status()
    pg_query(port, "CHECKPOINT")
    target = int(pg_query(port, "SELECT pg_current_wal_flush_lsn() - '0/0'"))
    while True:
        info = requests.get(f"{base}/tenant/{tenant}/timeline/{timeline}").json()
        hi, lo = info["last_record_lsn"].split("/")
        if (int(hi, 16) << 32 | int(lo, 16)) >= target:
            break
        time.sleep(0.5)
    print(f"import + catch-up: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    blocks, pages = [], 0
    for rel in ("pgbench_accounts", "pgbench_accounts_pkey"):
        row = pg_query(
            port,
            "SELECT (SELECT oid FROM pg_database WHERE datname = current_database()) || ' ' || "
            f"pg_relation_filenode('{rel}') || ' ' || pg_relation_size('{rel}') / 8192",
        )
        db, node, n = (int(x) for x in row.split())
        blocks += ["--blocks", f"1663/{db}/{node}:0-{n - 1}"]
        pages += n
    pg_run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    return blocks, pages


def load_synthetic(base: str, tenant: str, timeline: str, pages: int) -> tuple[list[str], int]:
    requests.post(f"{base}/tenant/{tenant}/timeline", json={"new_timeline_id": timeline}).raise_for_status()
    tl = f"{base}/tenant/{tenant}/timeline/{timeline}"
    lsn = 0x100_0000
    for first in range(0, pages, 48):
        lsn += 8
        lsn_text = f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
        values = [
            {"key": key(b), "lsn": lsn_text, "image": page(b).hex()}
            for b in range(first, min(first + 48, pages))
        ]
        requests.put(f"{tl}/dev/put", json={"commit_lsn": lsn_text, "values": values}).raise_for_status()
    return ["--blocks", f"{REL[0]}/{REL[1]}/{REL[2]}:0-{pages - 1}"], pages


def key(block: int) -> str:
    spc, db, rel, fork = REL
    return f"00{spc:08X}{db:08X}{rel:08X}{fork:02X}{block:08X}"


def page(block: int) -> bytes:
    head = f"synthetic block {block};".encode()
    return (head * (8192 // len(head) + 1))[:8192]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_sizes(http_port: int) -> tuple[float, float]:
    """Sum and count of the server's pagestream batch-size histogram."""
    text = requests.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        for name in ("pageserver_pagestream_batch_size_sum", "pageserver_pagestream_batch_size_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return values.get("pageserver_pagestream_batch_size_sum", 0.0), values.get("pageserver_pagestream_batch_size_count", 0.0)


def start(bin_dir: Path, workdir: Path, http_port: int, pg_port: int, extra: list[str]) -> subprocess.Popen:
    args = [
        str(bin_dir / "pageserver"),
        "-D",
        str(workdir),
        "-c",
        f'listen_http_addr="127.0.0.1:{http_port}"',
        "-c",
        f'listen_pg_addr="127.0.0.1:{pg_port}"',
        "-c",
        "dev_mode=true",
    ]
    for setting in extra:
        args += ["-c", setting]
    log = open(workdir / "pageserver.log", "a")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            requests.get(f"http://127.0.0.1:{http_port}/v1/status", timeout=1)
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    sys.exit("pageserver did not start")


def run_pagebench(opts, pg_port: int, tenant: str, timeline: str, blocks: list[str], depth: int, runtime: int, per_second: bool = False):
    return subprocess.run(
        [
            str(opts.bin_dir / "pagebench"),
            "get-page-latest-lsn",
            "--page-service-addr",
            f"127.0.0.1:{pg_port}",
            "--tenant-id",
            tenant,
            "--timeline-id",
            timeline,
            *blocks,
            "--connections",
            str(opts.connections),
            "--queue-depth",
            str(depth),
            "--runtime",
            str(runtime),
            *(["--per-second"] if per_second else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, default=Path("target/release"))
    ap.add_argument("--pages", type=int, default=32768)
    ap.add_argument("--perf-out", help="record a perf profile of the server during each run to PATH.qdN")
    ap.add_argument("--pgbench-scale", type=int, default=0, help="load a pgbench database of this scale instead")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--queue-depth", default="1", help="one depth or a comma-separated list, one run each")
    ap.add_argument("--runtime", type=int, default=20)
    ap.add_argument("--per-second", action="store_true", help="pagebench also prints each second's requests and latency")
    ap.add_argument("--warmup", type=int, default=0, help="seconds of unmeasured reads before each measured run")
    ap.add_argument(
        "--ps-config",
        action="append",
        default=[],
        help="extra pageserver.toml setting for the load (when it runs) and the measured runs, e.g. page_cache_size=196608 (repeatable)",
    )
    ap.add_argument(
        "--keep-dir",
        type=Path,
        help="load into this directory and keep it; a later run with the same directory reuses the loaded timeline",
    )
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        root = opts.keep_dir.resolve() if opts.keep_dir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        workdir = root / "ps"
        saved = root / "pagebench-load.json"
        http_port, pg_port = free_port(), free_port()
        base = f"http://127.0.0.1:{http_port}/v1"
        if saved.exists():
            load = json.loads(saved.read_text())
            tenant, timeline, blocks, pages = load["tenant"], load["timeline"], load["blocks"], load["pages"]
            proc = start(opts.bin_dir, workdir, http_port, pg_port, [])
            print(f"reusing {pages} pages loaded in {root}", file=sys.stderr)
        else:
            # Settings apply to the load too (e.g. image_compression shapes
            # the image layers it writes).
            workdir.mkdir()
            proc = start(opts.bin_dir, workdir, http_port, pg_port, opts.ps_config)
        try:
            if not saved.exists():
                tenant = requests.post(f"{base}/tenant", json={"compaction_period": "0s", "gc_period": "0s"}).json()
                timeline = os.urandom(16).hex()
                tl = f"{base}/tenant/{tenant}/timeline/{timeline}"
                t0 = time.monotonic()
                if opts.pgbench_scale:
                    blocks, pages = load_pgbench(base, tenant, timeline, opts.pgbench_scale, root / "pg")
                else:
                    blocks, pages = load_synthetic(base, tenant, timeline, opts.pages)
                requests.put(f"{tl}/checkpoint", params={"force_image_layer_creation": "true"}, timeout=3600).raise_for_status()
                layers = requests.get(f"{tl}/layer").json()["historic_layers"]
                print(
                    f"loaded {pages} pages to read in {time.monotonic() - t0:.1f} s; layers: "
                    + ", ".join(sorted({layer["kind"] for layer in layers})),
                    file=sys.stderr,
                )
                if opts.keep_dir:
                    saved.write_text(json.dumps({"tenant": tenant, "timeline": timeline, "blocks": blocks, "pages": pages}))
            for depth in (int(d) for d in str(opts.queue_depth).split(",")):
                # Each run starts from a cold block cache.
                proc.terminate()
                proc.wait(timeout=30)
                proc = start(opts.bin_dir, workdir, http_port, pg_port, opts.ps_config)
                if opts.warmup:
                    # Unmeasured pass so the measured one finds a warm cache.
                    run_pagebench(opts, pg_port, tenant, timeline, blocks, depth, opts.warmup)
                cpu_before = cpu_seconds(proc.pid)
                batches_before = batch_sizes(http_port)
                perf = None
                if opts.perf_out:
                    # The middle of the run, flat profile of the server.
                    perf = subprocess.Popen(
                        ["perf", "record", "-F", "999", "-g", "-o", f"{opts.perf_out}.qd{depth}", "-p", str(proc.pid),
                         "--", "sleep", str(max(opts.runtime // 2, 1))],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                bench = run_pagebench(opts, pg_port, tenant, timeline, blocks, depth, opts.runtime, opts.per_second)
                server_cpu = cpu_seconds(proc.pid) - cpu_before
                batches = [a - b for a, b in zip(batch_sizes(http_port), batches_before)]
                batch = round(batches[0] / batches[1], 2) if batches[1] else None
                if perf is not None:
                    perf.wait(timeout=60)
                print(bench.stdout, end="")
                result = json.loads(bench.stdout.strip().splitlines()[-1])
                per_1k = server_cpu / max(result["requests"], 1) * 1000
                print(json.dumps({"queue_depth": depth, "server_cpu_s": round(server_cpu, 2), "server_cpu_s_per_1k_pages": round(per_1k, 4), "mean_batch_size": batch}))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
