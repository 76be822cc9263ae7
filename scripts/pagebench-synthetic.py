#!/usr/bin/env python3
"""Benchmarks GetPage through the page service on synthetic pages.

Starts a (release) pageserver with dev_mode in a temporary workdir, writes
``--pages`` 8 KiB pages of one relation through the dev-mode put, flushes and
compacts them into image layers, restarts the server (cold block cache), and
runs ``pagebench get-page-latest-lsn`` against it. Prints pagebench's output
and the pageserver's CPU seconds over the run.

Until WAL ingest exists this stands in for the pgbench-based benchmark of
issue 6; the figures are only comparable for the same page count.

    scripts/pagebench-synthetic.py --bin-dir target/release --pages 32768 \\
        --connections 8 --queue-depth 1 --runtime 20
"""

from __future__ import annotations

import argparse
import json
import os
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


def key(block: int) -> str:
    spc, db, rel, fork = REL
    return f"00{spc:08X}{db:08X}{rel:08X}{fork:02X}{block:08X}"


def page(block: int) -> bytes:
    head = f"synthetic block {block};".encode()
    return (head * (8192 // len(head) + 1))[:8192]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(bin_dir: Path, workdir: Path, http_port: int, pg_port: int) -> subprocess.Popen:
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, default=Path("target/release"))
    ap.add_argument("--pages", type=int, default=32768)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--queue-depth", type=int, default=1)
    ap.add_argument("--runtime", type=int, default=20)
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "ps"
        workdir.mkdir()
        http_port, pg_port = free_port(), free_port()
        base = f"http://127.0.0.1:{http_port}/v1"
        proc = start(opts.bin_dir, workdir, http_port, pg_port)
        try:
            tenant = requests.post(f"{base}/tenant", json={"compaction_period": "0s", "gc_period": "0s"}).json()
            timeline = os.urandom(16).hex()
            requests.post(f"{base}/tenant/{tenant}/timeline", json={"new_timeline_id": timeline}).raise_for_status()
            tl = f"{base}/tenant/{tenant}/timeline/{timeline}"
            lsn = 0x100_0000
            t0 = time.monotonic()
            for first in range(0, opts.pages, 48):
                lsn += 8
                lsn_text = f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
                values = [
                    {"key": key(b), "lsn": lsn_text, "image": page(b).hex()}
                    for b in range(first, min(first + 48, opts.pages))
                ]
                requests.put(f"{tl}/dev/put", json={"commit_lsn": lsn_text, "values": values}).raise_for_status()
            requests.put(f"{tl}/checkpoint", params={"force_image_layer_creation": "true"}).raise_for_status()
            layers = requests.get(f"{tl}/layer").json()["historic_layers"]
            print(
                f"loaded {opts.pages} pages in {time.monotonic() - t0:.1f} s; layers: "
                + ", ".join(sorted({layer["kind"] for layer in layers})),
                file=sys.stderr,
            )
            proc.terminate()
            proc.wait(timeout=30)
            proc = start(opts.bin_dir, workdir, http_port, pg_port)
            cpu_before = cpu_seconds(proc.pid)
            bench = subprocess.run(
                [
                    str(opts.bin_dir / "pagebench"),
                    "get-page-latest-lsn",
                    "--page-service-addr",
                    f"127.0.0.1:{pg_port}",
                    "--tenant-id",
                    tenant,
                    "--timeline-id",
                    timeline,
                    "--blocks",
                    f"{REL[0]}/{REL[1]}/{REL[2]}:0-{opts.pages - 1}",
                    "--connections",
                    str(opts.connections),
                    "--queue-depth",
                    str(opts.queue_depth),
                    "--runtime",
                    str(opts.runtime),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            server_cpu = cpu_seconds(proc.pid) - cpu_before
            print(bench.stdout, end="")
            result = json.loads(bench.stdout.strip().splitlines()[-1])
            per_1k = server_cpu / max(result["requests"], 1) * 1000
            print(json.dumps({"server_cpu_s": round(server_cpu, 2), "server_cpu_s_per_1k_pages": round(per_1k, 4)}))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
