"""The libpq page service: handshake, commands, pagestream v2/v3 GetPage with
Neon's LSN rules, pipelining, auth, malformed input and shutdown with a client
that stops reading. Pages are written with the dev_mode put (WAL ingest comes
with its own issue)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import struct
import time

import pytest

from fixtures.metrics import parse_metrics, sample_value
from fixtures.pagestream import PAGE_SIZE, PageServiceConnection, PgError, RelTag
from fixtures.utils import format_lsn, parse_lsn, random_id, wait_until

REL = RelTag(1663, 1, 16384, 0)
# Above the LSN of the cluster a bootstrap imports (initdb: about 0/1500000).
BASE_LSN = 0x1000_0000


def rel_key(block: int) -> str:
    return f"00{REL.spcnode:08X}{REL.dbnode:08X}{REL.relnode:08X}{REL.forknum:02X}{block:08X}"


def page(block: int, lsn: int) -> bytes:
    head = f"blk {block} @ {lsn:X};".encode()
    return (head * (PAGE_SIZE // len(head) + 1))[:PAGE_SIZE]


def put(ps, tenant, timeline, blocks, lsn) -> None:
    values = [{"key": rel_key(b), "lsn": format_lsn(lsn), "image": page(b, lsn).hex()} for b in blocks]
    ps.http.dev_put(tenant, timeline, format_lsn(lsn), values)


@pytest.fixture
def env(pageserver_factory):
    ps = pageserver_factory({"dev_mode": True, "wait_lsn_timeout": "2s"}).start()
    tenant = ps.http.tenant_create(compaction_period="0s", gc_period="0s")
    timeline = random_id()
    ps.http.timeline_create(tenant, timeline, pg_version=15)
    put(ps, tenant, timeline, range(40), BASE_LSN)
    put(ps, tenant, timeline, range(0, 40, 2), BASE_LSN + 0x100)
    return ps, tenant, timeline


@pytest.mark.parametrize("version", [2, 3])
def test_get_page(env, version) -> None:
    ps, tenant, timeline = env
    last = BASE_LSN + 0x100
    with PageServiceConnection(ps.pg_addr) as conn:
        assert conn.params.get("client_encoding") == "UTF8"
        conn.start_pagestream(tenant, timeline, version)
        for block in range(40):
            want = page(block, last if block % 2 == 0 else BASE_LSN)
            assert conn.get_page(REL, block, last) == want
            assert conn.get_page(REL, block, BASE_LSN) == page(block, BASE_LSN)
        # u64::MAX means "latest".
        assert conn.get_page(REL, 2, 0xFFFF_FFFF_FFFF_FFFF) == page(2, last)
        # Past the end of what was written: a zero page, as Postgres reads it.
        assert conn.get_page(REL, 1000, last) == bytes(PAGE_SIZE)
        # A page written after the connection started is seen.
        put(ps, tenant, timeline, [5], last + 0x100)
        assert conn.get_page(REL, 5, last + 0x100) == page(5, last + 0x100)
        assert conn.get_page(REL, 5, last) == page(5, BASE_LSN)


def test_pipelined_requests_are_batched_in_order(env) -> None:
    ps, tenant, timeline = env
    last = BASE_LSN + 0x100
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline, 3)
        order = [7, 3, 39, 0, 12] * 8
        # One send for all requests, so they arrive together.
        parts = []
        for reqid, block in enumerate(order):
            body = bytes([2]) + struct.pack(">QQQ", reqid, last, 0) + REL.pack() + struct.pack(">I", block)
            parts.append(b"d" + struct.pack(">I", len(body) + 4) + body)
        conn.send_raw(b"".join(parts))
        for reqid, block in enumerate(order):
            kind, echoed, rest = conn.read_response()
            assert (kind, echoed) == (102, reqid)
            assert rest == page(block, last if block % 2 == 0 else BASE_LSN)
    samples = parse_metrics(ps.http.metrics())
    batches = [s for s in samples if s.name == "pageserver_pagestream_batch_size_count"]
    total = [s for s in samples if s.name == "pageserver_pagestream_batch_size_sum"]
    assert batches and total
    # 40 requests in fewer batches than requests: some were served together.
    assert batches[0].value < total[0].value, (batches, total)
    latency = [s for s in samples if s.name == "pageserver_pagestream_request_duration_seconds_count"]
    assert any(s.labels.get("op") == "get_page" and s.value >= 40 for s in latency), latency


def test_lsn_rules(env) -> None:
    ps, tenant, timeline = env
    last = BASE_LSN + 0x100
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline, 3)
        with pytest.raises(PgError, match="invalid LSN\\(0\\)"):
            conn.get_page(REL, 1, 0)
        with pytest.raises(PgError, match="not_modified_since"):
            conn.get_page(REL, 1, BASE_LSN, not_modified_since=last)
        # not_modified_since beyond the last record: waits (2 s), then errors.
        started = time.monotonic()
        with pytest.raises(PgError, match="LSN timeout"):
            conn.get_page(REL, 1, last + 0x10000, not_modified_since=last + 0x10000)
        assert time.monotonic() - started >= 1.5
        # The stream is still usable after those errors.
        assert conn.get_page(REL, 1, last) == page(1, BASE_LSN)
        # A request above the last record but with an old not_modified_since
        # is read at the last record LSN without waiting.
        assert conn.get_page(REL, 0, last + 0x10000, not_modified_since=BASE_LSN) == page(0, last)
        # Pages written through the dev API have no relation behind them.
        conn.send_nblocks(REL, last)
        kind, _, rest = conn.read_response()
        assert kind == 103 and b"does not exist" in rest, rest


def test_commands(env) -> None:
    ps, tenant, timeline = env
    with PageServiceConnection(ps.pg_addr) as conn:
        assert conn.query("SET datestyle TO ISO") == []
        with pytest.raises(PgError, match="unsupported command"):
            conn.query("SELECT 1")
        with pytest.raises(PgError, match="Not found"):
            conn.query(f"pagestream_v3 {tenant} {random_id()}")
        [[valid_until]] = conn.query(f"lease lsn {tenant} {timeline} {format_lsn(BASE_LSN)}")
        assert valid_until is not None and int(valid_until) > time.time() * 1000
        # The connection still serves a pagestream after failed commands.
        conn.start_pagestream(tenant, timeline, 2)
        assert conn.get_page(REL, 3, BASE_LSN) == page(3, BASE_LSN)


def test_malformed_input_closes_only_that_connection(env) -> None:
    ps, tenant, timeline = env
    healthy = PageServiceConnection(ps.pg_addr)
    healthy.start_pagestream(tenant, timeline, 3)

    # Garbage instead of a startup packet: a FATAL error, then the close.
    host, port = ps.pg_addr.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=5)
    raw.sendall(b"\xff" * 64)
    received = b""
    while chunk := raw.recv(4096):
        received += chunk
    raw.close()
    assert received.startswith(b"E") and b"08P01" in received, received

    # A truncated pagestream request.
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline, 3)
        conn.send(b"d", bytes([2, 0, 0]))
        with pytest.raises(PgError, match="malformed pagestream request"):
            conn.read_response()
        with pytest.raises((ConnectionError, OSError)):
            conn.read_message()

    # An unknown message type in the stream; an oversized length.
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline, 3)
        conn.send(b"Q", b"select 1\0")
        with pytest.raises(PgError):
            conn.read_response()
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.send_raw(b"Q" + struct.pack(">I", 0x7FFF_FFFF))
        tag, body = conn.read_message()
        assert tag == b"E" and b"length" in body, body
        with pytest.raises((ConnectionError, OSError)):
            conn.read_message()

    assert healthy.get_page(REL, 9, BASE_LSN) == page(9, BASE_LSN)
    healthy.close()


def test_auth(pageserver_factory, jwt_key, tmp_path) -> None:
    key_path = jwt_key.write_public_pem(tmp_path / "keys" / "auth_public_key.pem")
    ps = pageserver_factory(
        {"dev_mode": True, "pg_auth_type": "NeonJWT", "auth_validation_public_key_path": str(key_path)}
    ).start()
    tenant_a, tenant_b = ps.http.tenant_create(), ps.http.tenant_create()
    timeline = random_id()
    ps.http.timeline_create(tenant_a, timeline, pg_version=15)
    ps.http.timeline_create(tenant_b, timeline, pg_version=15)

    with pytest.raises(PgError, match="JWT authentication error"):
        PageServiceConnection(ps.pg_addr, password="not-a-jwt")
    with pytest.raises(AssertionError, match="asked for a password"):
        PageServiceConnection(ps.pg_addr)

    token_a = jwt_key.token("tenant", tenant_id=tenant_a)
    with PageServiceConnection(ps.pg_addr, password=token_a) as conn:
        with pytest.raises(PgError, match="permission denied"):
            conn.start_pagestream(tenant_b, timeline, 3)
        conn.start_pagestream(tenant_a, timeline, 3)
        assert conn.get_page(REL, 0, BASE_LSN) == bytes(PAGE_SIZE)

    with PageServiceConnection(ps.pg_addr, password=jwt_key.pageserverapi_token()) as conn:
        conn.start_pagestream(tenant_b, timeline, 2)


def test_client_that_stops_reading_does_not_block_shutdown(env) -> None:
    ps, tenant, timeline = env
    conn = PageServiceConnection(ps.pg_addr)
    conn.start_pagestream(tenant, timeline, 3)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = bytes([2]) + struct.pack(">QQQ", 0, BASE_LSN, 0) + REL.pack() + struct.pack(">I", 1)
    message = b"d" + struct.pack(">I", len(body) + 4) + body
    # Thousands of 8 KiB responses that nobody reads: the server's writes
    # block once the socket buffers are full.
    conn.sock.setblocking(False)
    sent = 0
    try:
        for _ in range(20000):
            conn.sock.send(message * 10)
            sent += 10
    except BlockingIOError:
        pass
    assert sent > 100
    time.sleep(1)
    started = time.monotonic()
    code = ps.stop()
    assert code == 0, f"exit code {code}"
    assert not ps.stop_needed_kill
    assert time.monotonic() - started < 8
    conn.close()


def test_pagebench_get_page_latest_lsn(env, pagebench_bin) -> None:
    ps, tenant, timeline = env
    command = [
        str(pagebench_bin),
        "get-page-latest-lsn",
        "--page-service-addr",
        ps.pg_addr,
        "--tenant-id",
        tenant,
        "--timeline-id",
        timeline,
        "--blocks",
        f"{REL.spcnode}/{REL.dbnode}/{REL.relnode}:0-39",
        "--connections",
        "2",
        "--queue-depth",
        "4",
        "--runtime",
        "2",
        "--per-second",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["requests"] > 100, summary
    # --per-second: one line per second of the run, counts adding up to the total.
    seconds = re.findall(r"^second (\d+): (\d+) requests", result.stdout, re.M)
    assert len(seconds) >= 2, result.stdout
    assert [int(s) for s, _ in seconds] == list(range(len(seconds)))
    assert sum(int(n) for _, n in seconds) == summary["requests"], result.stdout
    assert summary["errors"] == 0, summary
    assert summary["latency_us"]["p50"] <= summary["latency_us"]["p99"] <= summary["latency_us"]["p99.9"]

    # A wrong timeline: a clear error and a failing exit code.
    bad = command.copy()
    bad[bad.index(timeline)] = random_id()
    result = subprocess.run(bad, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Not found" in result.stderr, result.stderr


def test_relation_metadata_of_bootstrapped_cluster(pageserver_factory, pg_bindir) -> None:
    """Exists / Nblocks / GetPage / DbSize / GetSlruSegment on a bootstrapped
    timeline agree with the files of a fresh initdb (initdb is deterministic:
    same sizes and catalog pages for the same binary and options)."""
    from fixtures.postgres import PgServer

    ps = pageserver_factory({"wait_lsn_timeout": "2s"}).start()
    tenant = ps.http.tenant_create()
    timeline = random_id()
    info = ps.http.timeline_create(tenant, timeline, pg_version=15)
    lsn = parse_lsn(info["last_record_lsn"])
    reference = PgServer(pg_bindir).init()
    try:
        base1 = reference.datadir / "base" / "1"
        files = {int(p.name): p.stat().st_size for p in base1.iterdir() if p.name.isdigit()}
        with PageServiceConnection(ps.pg_addr) as conn:
            conn.start_pagestream(tenant, timeline, 3)
            for relnode, size in sorted(files.items()):
                rel = RelTag(1663, 1, relnode, 0)
                assert conn.exists(rel, lsn), relnode
                assert conn.nblocks(rel, lsn) == size // PAGE_SIZE, relnode
            # pg_class: every page as initdb wrote it.
            pg_class = (base1 / "1259").read_bytes()
            for blk in range(len(pg_class) // PAGE_SIZE):
                assert conn.get_page(RelTag(1663, 1, 1259, 0), blk, lsn) == pg_class[blk * PAGE_SIZE : (blk + 1) * PAGE_SIZE]
            # Past the end: zeroes. A missing relation does not exist; its
            # FSM/VM are empty, its main fork an error.
            assert conn.get_page(RelTag(1663, 1, 1259, 0), 10_000, lsn) == bytes(PAGE_SIZE)
            missing = RelTag(1663, 1, 999_999, 0)
            assert not conn.exists(missing, lsn)
            assert conn.nblocks(RelTag(1663, 1, 999_999, 2), lsn) == 0
            with pytest.raises(PgError, match="does not exist"):
                conn.nblocks(missing, lsn)
            with pytest.raises(PgError, match="relnode 0"):
                conn.exists(RelTag(1663, 1, 0, 0), lsn)
            # DbSize: every fork of every relation of template1.
            all_forks = sum(p.stat().st_size for p in base1.iterdir() if p.name[0].isdigit() and "." not in p.name)
            assert conn.db_size(1, lsn) == all_forks
            # pg_xact/0000 (initdb's bootstrap transactions committed).
            assert conn.slru_segment(0, 0, lsn) == (reference.datadir / "pg_xact" / "0000").read_bytes()
            with pytest.raises(PgError, match="does not exist"):
                conn.slru_segment(0, 0x77, lsn)
            # The stream still works after those errors.
            assert conn.nblocks(RelTag(1663, 1, 1259, 0), lsn) == len(pg_class) // PAGE_SIZE
    finally:
        reference.cleanup()


def test_get_page_throttle_delays_reads(pageserver_factory) -> None:
    """`timeline_get_throttle` (100 pages/s, no burst) delays GetPage; the
    computed delays are counted in a metric (not timed here)."""
    ps = pageserver_factory({"dev_mode": True}).start()
    throttle = {
        "task_kinds": ["PageRequestHandler"],
        "initial": 0,
        "refill_interval": "100ms",
        "refill_amount": 10,
        "max": 10,
    }
    tenant = ps.http.tenant_create(compaction_period="0s", gc_period="0s", timeline_get_throttle=throttle)
    timeline = random_id()
    ps.http.timeline_create(tenant, timeline, pg_version=15)
    put(ps, tenant, timeline, range(40), BASE_LSN)

    def throttled_us() -> float:
        return sample_value(parse_metrics(ps.http.metrics()), "pageserver_page_service_throttled_microseconds_total")

    before = throttled_us()
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline)
        for block in range(40):
            assert conn.get_page(REL, block, BASE_LSN) == page(block, BASE_LSN)
    # The bucket fills to its burst (10) while the pages are written, so 30
    # pages wait at 100/s: about 0.3 s of delay in all, less whatever time
    # the requests themselves took (the bucket refills meanwhile). Half of it
    # is a bound a loaded CI machine still meets; without a throttle it is 0.
    assert throttled_us() - before >= 150_000


def test_connection_limit(pageserver_factory) -> None:
    ps = pageserver_factory({"page_service_max_connections": 2}).start()
    first, second = PageServiceConnection(ps.pg_addr), PageServiceConnection(ps.pg_addr)
    try:
        with pytest.raises(PgError) as e:
            PageServiceConnection(ps.pg_addr)
        assert e.value.code == "53300", e.value.fields
        first.close()

        def another() -> bool:
            PageServiceConnection(ps.pg_addr).close()
            return True

        assert wait_until(another, 10)
        assert second.query("set x = 1") == []
    finally:
        second.close()


def test_reconstruction_failure_is_an_error_and_server_keeps_serving(env) -> None:
    """A stored record that redo rejects (here a corrupt Postgres record over
    a good image) fails that GetPage with an error naming the key and LSN,
    is counted in a metric, and changes nothing else: older versions of the
    page, other pages and other connections are still served."""
    ps, tenant, timeline = env
    bad_lsn = BASE_LSN + 0x200
    corrupt = {"key": rel_key(3), "lsn": format_lsn(bad_lsn), "postgres_record": "ff" * 40}
    ps.http.dev_put(tenant, timeline, format_lsn(bad_lsn), [corrupt])

    def failures() -> float:
        return sample_value(parse_metrics(ps.http.metrics()), "pageserver_page_reconstruct_errors_total")

    before = failures()
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline)
        with pytest.raises(PgError) as e:
            conn.get_page(REL, 3, bad_lsn)
        assert rel_key(3) in e.value.message, e.value.message
        assert format_lsn(bad_lsn) in e.value.message, e.value.message
    assert failures() > before
    with PageServiceConnection(ps.pg_addr) as conn:
        conn.start_pagestream(tenant, timeline)
        assert conn.get_page(REL, 3, BASE_LSN) == page(3, BASE_LSN)
        assert conn.get_page(REL, 5, bad_lsn) == page(5, BASE_LSN)
        assert conn.get_page(REL, 4, bad_lsn) == page(4, BASE_LSN + 0x100)
    assert ps.http.get("/v1/status").status_code == 200
