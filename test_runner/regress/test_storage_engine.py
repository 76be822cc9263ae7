"""The storage engine through the binary: writes (dev_mode put), reads
(getpage), flush (checkpoint), compaction, GC, leases, branches, restarts
and a kill -9 in the middle of a flush."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from fixtures.metrics import parse_metrics
from fixtures.pageserver import find_panic_lines
from fixtures.utils import format_lsn, parse_lsn, random_id, wait_until

# Background loops must not interfere with what a test asserts about layers.
QUIET_TENANT = {
    "compaction_period": "0s",
    "gc_period": "0s",
    "checkpoint_timeout": "10m",
    "pitr_interval": "0s",
}
# Above the LSN of the cluster a bootstrap imports (initdb: about 0/1500000).
BASE_LSN = 0x1000_0000


def rel_key(block: int, rel: int = 16384) -> str:
    """Key of a relation block: spc 1663, db 1, main fork (Neon's encoding)."""
    return f"00{1663:08X}{1:08X}{rel:08X}00{block:08X}"


def page(tag: int, lsn: int) -> bytes:
    """An 8 KiB page that says which key and LSN it was written for."""
    head = f"block {tag} at {format_lsn(lsn)};".encode()
    return (head * (8192 // len(head) + 1))[:8192]


def image(block: int, lsn: int) -> dict:
    return {"key": rel_key(block), "lsn": format_lsn(lsn), "image": page(block, lsn).hex()}


@pytest.fixture
def ps(pageserver_factory):
    return pageserver_factory({"dev_mode": True, "wait_lsn_timeout": "2s"}).start()


def new_timeline(ps, **tenant_conf) -> tuple[str, str]:
    conf = {**QUIET_TENANT, **tenant_conf}
    tenant = ps.http.tenant_create(**conf)
    timeline = random_id()
    ps.http.timeline_create(tenant, timeline, pg_version=15)
    return tenant, timeline


def put_images(ps, tenant: str, timeline: str, blocks: range, lsn: int) -> None:
    """One batch at `lsn` (at most 48 pages keeps the body under the 1 MiB limit)."""
    assert len(blocks) <= 48
    ps.http.dev_put(tenant, timeline, format_lsn(lsn), [image(b, lsn) for b in blocks])


def written_layers(http, tenant: str, timeline: str) -> list[dict]:
    """The historic layers holding what the test wrote: all but the one(s)
    with the cluster the bootstrap imported (ending at its initdb LSN)."""
    initdb_lsn = parse_lsn(http.timeline_detail(tenant, timeline)["initdb_lsn"])
    layers = http.layer_map_info(tenant, timeline)["historic_layers"]
    return [layer for layer in layers if parse_lsn(layer["lsn_end"]) > initdb_lsn + 1]


def timeline_dir(ps, tenant: str, timeline: str) -> Path:
    return ps.workdir / "tenants" / tenant / "timelines" / timeline


def test_put_read_checkpoint_restart(ps) -> None:
    http = ps.http
    tenant, timeline = new_timeline(ps)
    lsn1, lsn2 = BASE_LSN, BASE_LSN + 0x1000
    put_images(ps, tenant, timeline, range(40), lsn1)
    put_images(ps, tenant, timeline, range(0, 40, 2), lsn2)

    info = http.timeline_detail(tenant, timeline)
    assert parse_lsn(info["last_record_lsn"]) == lsn2
    assert parse_lsn(info["disk_consistent_lsn"]) < lsn2, "nothing was flushed yet"
    layers = http.layer_map_info(tenant, timeline)
    assert written_layers(http, tenant, timeline) == []
    assert [layer["kind"] for layer in layers["in_memory_layers"]] == ["Open"]

    def check_reads() -> None:
        for block in range(40):
            latest = lsn2 if block % 2 == 0 else lsn1
            assert http.getpage(tenant, timeline, rel_key(block)) == page(block, latest)
            assert http.getpage(tenant, timeline, rel_key(block), format_lsn(lsn1)) == page(block, lsn1)

    check_reads()
    http.timeline_checkpoint(tenant, timeline)
    info = http.timeline_detail(tenant, timeline)
    assert parse_lsn(info["disk_consistent_lsn"]) == lsn2
    assert info["current_physical_size"] > 40 * 8192
    layers = http.layer_map_info(tenant, timeline)
    assert layers["in_memory_layers"] == []
    [delta] = written_layers(http, tenant, timeline)
    assert delta["kind"] == "Delta" and delta["l0"] is True
    assert parse_lsn(delta["lsn_start"]) <= lsn1 < lsn2 < parse_lsn(delta["lsn_end"])
    assert (timeline_dir(ps, tenant, timeline) / "index.json").exists()
    check_reads()

    ps.restart()
    info = http.timeline_detail(tenant, timeline)
    assert parse_lsn(info["last_record_lsn"]) == lsn2
    assert parse_lsn(info["disk_consistent_lsn"]) == lsn2
    assert [layer["layer_file_name"] for layer in written_layers(http, tenant, timeline)] == [delta["layer_file_name"]]
    check_reads()


def test_graceful_shutdown_flushes(ps) -> None:
    http = ps.http
    tenant, timeline = new_timeline(ps)
    put_images(ps, tenant, timeline, range(8), BASE_LSN)
    assert parse_lsn(http.timeline_detail(tenant, timeline)["disk_consistent_lsn"]) < BASE_LSN
    ps.restart()
    info = http.timeline_detail(tenant, timeline)
    assert parse_lsn(info["disk_consistent_lsn"]) == BASE_LSN
    assert parse_lsn(info["last_record_lsn"]) == BASE_LSN
    for block in range(8):
        assert http.getpage(tenant, timeline, rel_key(block)) == page(block, BASE_LSN)


def test_compaction_images_and_gc(ps) -> None:
    http = ps.http
    tenant, timeline = new_timeline(
        ps, compaction_threshold=3, image_creation_threshold=1, compaction_target_size=1 << 20
    )
    lsns = [BASE_LSN + i * 0x1000 for i in range(4)]
    for lsn in lsns:
        put_images(ps, tenant, timeline, range(24), lsn)
        http.timeline_checkpoint(tenant, timeline, compact=False)
    layers = written_layers(http, tenant, timeline)
    assert len(layers) == 4 and all(layer["l0"] for layer in layers), layers

    http.timeline_compact(tenant, timeline, force_l0_compaction=True, force_image_layer_creation=True)
    layers = http.layer_map_info(tenant, timeline)["historic_layers"]
    kinds = {layer["kind"] for layer in layers}
    assert "Image" in kinds, layers
    assert not any(layer.get("l0") for layer in layers), layers
    for block in range(24):
        assert http.getpage(tenant, timeline, rel_key(block)) == page(block, lsns[-1])
        assert http.getpage(tenant, timeline, rel_key(block), format_lsn(lsns[1])) == page(block, lsns[1])

    # Newer data on top: the L1 delta and the image layer now lie below
    # the GC cutoff once it reaches the newest LSN.
    later = [BASE_LSN + i * 0x1000 for i in (4, 5)]
    for lsn in later:
        put_images(ps, tenant, timeline, range(24), lsn)
        http.timeline_checkpoint(tenant, timeline, compact=False)
    layers = http.layer_map_info(tenant, timeline)["historic_layers"]

    # A lease keeps the layers needed at its LSN, until it is gone.
    lease = http.lsn_lease(tenant, timeline, format_lsn(lsns[1]))
    assert "valid_until" in lease
    result = http.timeline_gc(tenant, timeline, gc_horizon=0)
    assert result["layers_total"] == len(layers)
    assert result["layers_needed_by_leases"] > 0, result
    assert http.getpage(tenant, timeline, rel_key(3), format_lsn(lsns[1])) == page(3, lsns[1])

    info = http.timeline_detail(tenant, timeline)
    cutoff = parse_lsn(info["applied_gc_cutoff_lsn"])
    assert cutoff == later[-1]
    response = http.getpage_raw(tenant, timeline, rel_key(3), format_lsn(lsns[0]))
    assert response.status_code == 400, response.text
    assert "GC cutoff" in response.json()["msg"]

    # Below the cutoff, nothing can be leased any more.
    response = http.post(f"/v1/tenant/{tenant}/timeline/{timeline}/lsn_lease", json={"lsn": format_lsn(lsns[0])})
    assert response.status_code == 400, response.text

    ps.restart()
    # Leases live in memory only; after the restart GC takes what one held.
    result = http.timeline_gc(tenant, timeline, gc_horizon=0)
    assert result["layers_removed"] > 0, result
    remaining = http.layer_map_info(tenant, timeline)["historic_layers"]
    assert len(remaining) == result["layers_total"] - result["layers_removed"]
    on_disk = {p.name for p in timeline_dir(ps, tenant, timeline).iterdir()}
    for layer in layers:
        if layer not in remaining:
            assert not any(name.startswith(layer["layer_file_name"]) for name in on_disk), layer
    for block in range(24):
        assert http.getpage(tenant, timeline, rel_key(block)) == page(block, later[-1])
    assert parse_lsn(http.timeline_detail(tenant, timeline)["applied_gc_cutoff_lsn"]) == cutoff


def test_branch_reads_through_ancestor(ps) -> None:
    http = ps.http
    tenant, parent = new_timeline(ps)
    lsn1, lsn2, lsn3 = BASE_LSN, BASE_LSN + 0x1000, BASE_LSN + 0x2000
    put_images(ps, tenant, parent, range(10), lsn1)
    put_images(ps, tenant, parent, range(5), lsn2)

    child = random_id()
    info = http.timeline_create(tenant, child, ancestor_timeline_id=parent, ancestor_start_lsn=format_lsn(lsn1))
    assert parse_lsn(info["ancestor_lsn"]) == lsn1
    assert parse_lsn(info["last_record_lsn"]) == lsn1
    # The branch point was made durable on the parent.
    assert parse_lsn(http.timeline_detail(tenant, parent)["disk_consistent_lsn"]) >= lsn1

    put_images(ps, tenant, child, range(3), lsn3)
    # A test record on top of an ancestor's page: appends to it.
    http.dev_put(
        tenant,
        child,
        format_lsn(lsn3 + 8),
        [{"key": rel_key(7), "lsn": format_lsn(lsn3 + 8), "test_append": b"+child".hex()}],
    )

    def check() -> None:
        for block in range(10):
            child_page = http.getpage(tenant, child, rel_key(block))
            if block < 3:
                assert child_page == page(block, lsn3)
            elif block == 7:
                assert child_page == page(7, lsn1) + b"+child"
            else:
                # The parent's newer images at lsn2 are above the branch point.
                assert child_page == page(block, lsn1)
            parent_page = http.getpage(tenant, parent, rel_key(block))
            assert parent_page == page(block, lsn2 if block < 5 else lsn1)

    check()
    # The parent cannot lose history its child needs.
    response = http.delete(f"/v1/tenant/{tenant}/timeline/{parent}")
    assert response.status_code == 412, response.text
    http.timeline_checkpoint(tenant, parent)
    http.timeline_gc(tenant, parent, gc_horizon=0)
    check()
    ps.restart()
    check()


def test_read_and_write_errors(ps, pageserver_factory) -> None:
    http = ps.http
    tenant, timeline = new_timeline(ps)
    put_images(ps, tenant, timeline, range(2), BASE_LSN)

    response = http.getpage_raw(tenant, timeline, rel_key(99))
    assert response.status_code == 404, response.text
    assert "not found" in response.json()["msg"]
    for bad_key in ("zz", "00" * 17, rel_key(1) + "00"):
        response = http.getpage_raw(tenant, timeline, bad_key)
        assert response.status_code == 400, (bad_key, response.text)
    response = http.getpage_raw(tenant, timeline, rel_key(1), "not-an-lsn")
    assert response.status_code == 400, response.text
    response = http.get(f"/v1/tenant/{tenant}/timeline/{timeline}/getpage")
    assert response.status_code == 400, response.text

    # Above last_record_lsn: waits (wait_lsn_timeout = 2s), then 408.
    response = http.getpage_raw(tenant, timeline, rel_key(1), format_lsn(BASE_LSN + 0x10_0000))
    assert response.status_code == 408, response.text
    assert "timed out" in response.json()["msg"]

    # A read waiting for an LSN is answered as soon as a write reaches it.
    later = BASE_LSN + 0x2000
    result: dict = {}

    def read_later() -> None:
        result["response"] = http.getpage_raw(tenant, timeline, rel_key(1), format_lsn(later))

    reader = threading.Thread(target=read_later)
    reader.start()
    put_images(ps, tenant, timeline, range(1, 2), later)
    reader.join(timeout=10)
    assert result["response"].status_code == 200
    assert result["response"].content == page(1, later)

    # Writes must move forward.
    response = http.dev_put_raw(tenant, timeline, format_lsn(BASE_LSN), [image(5, BASE_LSN)])
    assert response.status_code == 400, response.text
    response = http.dev_put_raw(tenant, timeline, format_lsn(later + 8), [image(5, later + 16)])
    assert response.status_code == 400, response.text
    response = http.dev_put_raw(
        tenant, timeline, format_lsn(later + 8), [{"key": rel_key(5), "lsn": format_lsn(later + 8), "image": "xyz"}]
    )
    assert response.status_code == 400, response.text
    response = http.dev_put_raw(tenant, timeline, format_lsn(later + 8), [{"key": rel_key(5), "lsn": format_lsn(later + 8)}])
    assert response.status_code == 400, response.text
    # None of the refused batches left anything behind.
    assert http.getpage_raw(tenant, timeline, rel_key(5)).status_code == 404
    assert parse_lsn(http.timeline_detail(tenant, timeline)["last_record_lsn"]) == later

    # Unknown timeline.
    response = http.getpage_raw(tenant, random_id(), rel_key(1))
    assert response.status_code == 404, response.text

    # Without dev_mode there is no put route.
    plain = pageserver_factory(name="plain").start()
    t2 = plain.http.tenant_create()
    tl2 = random_id()
    plain.http.timeline_create(t2, tl2, pg_version=15)
    response = plain.http.dev_put_raw(t2, tl2, format_lsn(BASE_LSN), [image(1, BASE_LSN)])
    assert response.status_code == 404, response.text


def test_kill9_during_flush(ps) -> None:
    """A layer file written but not yet in the index is discarded at restart;
    data that was only in memory is gone, durable data is intact."""
    http = ps.http
    tenant, timeline = new_timeline(ps)
    lsn_a, lsn_b = BASE_LSN, BASE_LSN + 0x1000
    put_images(ps, tenant, timeline, range(16), lsn_a)
    http.timeline_checkpoint(tenant, timeline, compact=False)
    durable_layers = http.layer_map_info(tenant, timeline)["historic_layers"]
    assert len(written_layers(http, tenant, timeline)) == 1

    put_images(ps, tenant, timeline, range(16), lsn_b)
    http.configure_failpoints(("flush-after-layer-write", "sleep(60000)"))
    tl_dir = timeline_dir(ps, tenant, timeline)
    files_before = {p.name for p in tl_dir.iterdir()}

    def checkpoint() -> None:
        try:
            http.with_token(None).put(f"/v1/tenant/{tenant}/timeline/{timeline}/checkpoint", timeout=90)
        except requests.RequestException:
            pass  # the process is killed under it

    flusher = threading.Thread(target=checkpoint, daemon=True)
    flusher.start()

    def new_layer_file() -> str:
        new = [
            name
            for name in {p.name for p in tl_dir.iterdir()} - files_before
            if not name.startswith("ephemeral-") and "___temp" not in name
        ]
        assert new, "the flush has not written its layer file yet"
        return new[0]

    written = wait_until(new_layer_file, timeout=30)
    ps.kill9()
    assert (tl_dir / written).exists()

    ps.start()
    assert not (tl_dir / written).exists(), "an unindexed layer file survived the restart"
    assert not any(p.name.startswith("ephemeral-") for p in tl_dir.iterdir())
    info = http.timeline_detail(tenant, timeline)
    assert parse_lsn(info["disk_consistent_lsn"]) == lsn_a
    assert parse_lsn(info["last_record_lsn"]) == lsn_a
    assert http.layer_map_info(tenant, timeline)["historic_layers"] == durable_layers
    for block in range(16):
        assert http.getpage(tenant, timeline, rel_key(block)) == page(block, lsn_a)
    response = http.getpage_raw(tenant, timeline, rel_key(0), format_lsn(lsn_b))
    assert response.status_code == 408, response.text

    # The timeline takes the lost writes again and flushes them.
    put_images(ps, tenant, timeline, range(16), lsn_b)
    http.timeline_checkpoint(tenant, timeline, compact=False)
    assert parse_lsn(http.timeline_detail(tenant, timeline)["disk_consistent_lsn"]) == lsn_b
    for block in range(16):
        assert http.getpage(tenant, timeline, rel_key(block)) == page(block, lsn_b)


def test_branch_lsn_checks(ps) -> None:
    http = ps.http
    tenant, parent = new_timeline(ps)
    lsn1, lsn2, lsn3 = BASE_LSN, BASE_LSN + 0x1000, BASE_LSN + 0x2000
    put_images(ps, tenant, parent, range(4), lsn1)
    put_images(ps, tenant, parent, range(4), lsn2)

    def branch(lsn: int):
        body = {"new_timeline_id": random_id(), "ancestor_timeline_id": parent, "ancestor_start_lsn": format_lsn(lsn)}
        return http.post(f"/v1/tenant/{tenant}/timeline", json=body)

    # Beyond the parent's last record LSN: waited for (2 s here), then 406.
    response = branch(lsn3)
    assert response.status_code == 406, response.text
    assert "timed out" in response.json()["msg"]

    # Reached while waiting: the branch is created.
    result: dict = {}
    waiter = threading.Thread(target=lambda: result.update(response=branch(lsn3)))
    waiter.start()
    time.sleep(0.3)
    put_images(ps, tenant, parent, range(4), lsn3)
    waiter.join(timeout=10)
    assert result["response"].status_code == 201, result["response"].text
    child = result["response"].json()["timeline_id"]
    assert http.getpage(tenant, child, rel_key(2)) == page(2, lsn3)

    # Below the GC cutoff: 406.
    http.timeline_checkpoint(tenant, parent)
    http.timeline_gc(tenant, parent, gc_horizon=0)
    assert parse_lsn(http.timeline_detail(tenant, parent)["applied_gc_cutoff_lsn"]) == lsn3
    response = branch(lsn1)
    assert response.status_code == 406, response.text
    assert "GC cutoff" in response.json()["msg"]
    # Only the one good branch exists.
    assert {t["timeline_id"] for t in http.timeline_list(tenant)} == {parent, child}


def _cache_accesses(ps) -> dict[tuple[str, str], float]:
    samples = parse_metrics(ps.http.metrics())
    return {
        (s.labels["content_kind"], s.labels["result"]): s.value
        for s in samples
        if s.name == "pageserver_page_cache_accesses_total"
    }


def test_page_cache_metrics(ps) -> None:
    http = ps.http
    tenant, timeline = new_timeline(ps)
    put_images(ps, tenant, timeline, range(32), BASE_LSN)
    http.timeline_checkpoint(tenant, timeline, compact=False)
    ps.restart()  # a cold cache: every layer block comes from disk first

    before = _cache_accesses(ps)
    for block in range(32):
        assert http.getpage(tenant, timeline, rel_key(block)) == page(block, BASE_LSN)
    middle = _cache_accesses(ps)
    for block in range(32):
        assert http.getpage(tenant, timeline, rel_key(block)) == page(block, BASE_LSN)
    after = _cache_accesses(ps)

    def delta(a, b, kind_result):
        return b.get(kind_result, 0) - a.get(kind_result, 0)

    kinds = {kind for kind, _ in after}
    assert "index_block" in kinds, after
    first_misses = sum(delta(before, middle, (k, "miss")) for k in kinds)
    assert first_misses > 0, (before, middle)
    # The second pass over the same pages is served from the cache.
    second_hits = sum(delta(middle, after, (k, "hit")) for k in kinds)
    second_misses = sum(delta(middle, after, (k, "miss")) for k in kinds)
    assert second_hits >= 32, (middle, after)
    assert second_misses < first_misses, (middle, after)


def test_corrupt_layer_file_gives_clean_error(ps) -> None:
    http = ps.http
    tenant, timeline = new_timeline(ps)
    put_images(ps, tenant, timeline, range(16), BASE_LSN)
    http.timeline_checkpoint(tenant, timeline, compact=False)
    [layer] = written_layers(http, tenant, timeline)
    other_tenant, other_timeline = new_timeline(ps)
    put_images(ps, other_tenant, other_timeline, range(4), BASE_LSN)
    http.timeline_checkpoint(other_tenant, other_timeline, compact=False)
    ps.stop()

    tl_dir = timeline_dir(ps, tenant, timeline)
    [path] = [p for p in tl_dir.iterdir() if p.name.startswith(layer["layer_file_name"])]
    data = bytearray(path.read_bytes())
    # Flip bytes in the middle of the blob area: page data, not the header.
    for offset in range(len(data) // 3, len(data) // 3 + 64):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))

    ps.start()
    failures = []
    for block in range(16):
        response = http.request("GET", f"/v1/tenant/{tenant}/timeline/{timeline}/getpage", allow_5xx=True, params={"key": rel_key(block)})
        if response.status_code == 200:
            # Blocks outside the damaged range still read correctly.
            assert response.content == page(block, BASE_LSN)
        else:
            assert response.status_code == 500, response.text
            failures.append(response.json()["msg"])
    assert failures, "no read touched the damaged bytes"
    assert all(path.name in msg for msg in failures), failures
    assert all("offset" in msg or "block" in msg for msg in failures), failures
    # The process keeps serving other data.
    for block in range(4):
        assert http.getpage(other_tenant, other_timeline, rel_key(block)) == page(block, BASE_LSN)
    assert not find_panic_lines(ps.log_text())
