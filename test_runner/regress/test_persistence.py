"""Tenants and timelines survive restarts (graceful and kill -9); deletions stick."""

from __future__ import annotations

import json
import tomllib

import pytest

from fixtures.http import PageserverHttpClient
from fixtures.pageserver import PageserverProcess
from fixtures.utils import random_id, wait_until


def _snapshot(http: PageserverHttpClient) -> dict:
    """What the API says about every tenant and timeline, in comparable form."""
    state: dict = {}
    for info in http.tenant_list():
        tenant = info["id"]
        detail = http.tenant_detail(tenant)
        timelines = {
            t["timeline_id"]: (
                t["ancestor_timeline_id"],
                t["ancestor_lsn"],
                t["last_record_lsn"],
                t["pg_version"],
                t["state"],
            )
            for t in http.timeline_list(tenant)
        }
        state[tenant] = {
            "generation": detail["generation"],
            "state": detail["state"],
            "attachment_status": detail["attachment_status"],
            "timelines": timelines,
            "detail_timelines": sorted(detail["timelines"]),
            "config": http.tenant_config(tenant),
        }
    return state


def _populate(http: PageserverHttpClient) -> dict[str, str]:
    """Tenants made both ways, with a small timeline tree; returns names → ids."""
    ids = {
        "legacy": http.tenant_create(random_id()),
        "attached": random_id(),
        "multi": random_id(),
        "root": random_id(),
        "branch": random_id(),
        "leaf": random_id(),
        "other_root": random_id(),
    }
    http.location_config(ids["attached"], "AttachedSingle", generation=7)
    http.location_config(ids["attached"], "AttachedSingle", generation=9, tenant_conf={"gc_period": "2h"})
    http.location_config(ids["multi"], "AttachedMulti", generation=3)

    http.timeline_create(ids["legacy"], ids["root"])
    http.timeline_create(ids["legacy"], ids["branch"], ancestor_timeline_id=ids["root"])
    http.timeline_create(ids["legacy"], ids["leaf"], ancestor_timeline_id=ids["branch"])
    http.timeline_create(ids["attached"], ids["other_root"])
    return ids


def _assert_populated(state: dict, ids: dict[str, str]) -> None:
    assert set(state) == {ids["legacy"], ids["attached"], ids["multi"]}
    assert state[ids["legacy"]]["generation"] == 1
    assert state[ids["attached"]]["generation"] == 9
    assert state[ids["multi"]]["generation"] == 3
    for tenant in state.values():
        assert tenant["state"] == {"slug": "Active"}
    legacy = state[ids["legacy"]]["timelines"]
    assert legacy[ids["root"]][0] is None
    assert legacy[ids["branch"]][0] == ids["root"]
    assert legacy[ids["leaf"]][0] == ids["branch"]
    assert set(state[ids["attached"]]["timelines"]) == {ids["other_root"]}
    assert state[ids["multi"]]["timelines"] == {}
    # The per-tenant override given with the last location_config is kept.
    assert state[ids["attached"]]["config"]["tenant_specific_overrides"].get("gc_period") is not None
    assert state[ids["multi"]]["config"]["tenant_specific_overrides"].get("gc_period") is None


def _restart(ps: PageserverProcess, how: str) -> None:
    if how == "graceful":
        ps.restart()
    else:
        ps.kill9()
        ps.start()


@pytest.mark.parametrize("how", ["graceful", "kill9"])
def test_state_survives_restart(pageserver, how) -> None:
    ids = _populate(pageserver.http)
    before = _snapshot(pageserver.http)
    _assert_populated(before, ids)

    _restart(pageserver, how)

    after = _snapshot(pageserver.http)
    assert after == before
    _assert_populated(after, ids)

    # The restored state is live: generations are still enforced, ancestry still counts.
    http = pageserver.http
    response = http.put(
        f"/v1/tenant/{ids['attached']}/location_config",
        json={"mode": "AttachedSingle", "generation": 8, "tenant_conf": {}},
    )
    assert response.status_code == 400, response.text
    assert http.delete(f"/v1/tenant/{ids['legacy']}/timeline/{ids['branch']}").status_code == 412
    assert http.post("/v1/tenant", json={"new_tenant_id": ids["legacy"]}).status_code == 409
    new_timeline = random_id()
    http.timeline_create(ids["multi"], new_timeline)
    http.timeline_create(ids["multi"], random_id(), ancestor_timeline_id=new_timeline)


@pytest.mark.parametrize("how", ["graceful", "kill9"])
def test_deletions_survive_restart(pageserver, how) -> None:
    http = pageserver.http
    ids = _populate(http)
    http.tenant_delete(ids["multi"])
    http.tenant_detach(ids["attached"])
    http.timeline_delete(ids["legacy"], ids["leaf"])
    wait_until(
        lambda: http.get(f"/v1/tenant/{ids['legacy']}/timeline/{ids['leaf']}").status_code == 404,
        timeout=10,
        description="timeline deletion finished",
    )
    before = _snapshot(http)
    assert set(before) == {ids["legacy"]}

    _restart(pageserver, how)

    http = pageserver.http
    assert _snapshot(http) == before
    for gone in (ids["multi"], ids["attached"]):
        assert http.get(f"/v1/tenant/{gone}").status_code == 404
    assert http.get(f"/v1/tenant/{ids['legacy']}/timeline/{ids['leaf']}").status_code == 404
    assert set(http.tenant_detail(ids["legacy"])["timelines"]) == {ids["root"], ids["branch"]}


def test_on_disk_layout(pageserver) -> None:
    http = pageserver.http
    ids = _populate(http)
    tenants_dir = pageserver.workdir / "tenants"
    for name in ("legacy", "attached", "multi"):
        config = tomllib.loads((tenants_dir / ids[name] / "config-v1").read_text())
        assert isinstance(config, dict) and config
    for tenant, timeline in (
        ("legacy", "root"),
        ("legacy", "branch"),
        ("legacy", "leaf"),
        ("attached", "other_root"),
    ):
        metadata = json.loads((tenants_dir / ids[tenant] / "timelines" / ids[timeline] / "metadata.json").read_text())
        assert isinstance(metadata, dict) and metadata


def test_restart_with_other_identity_keeps_tenants(pageserver_factory) -> None:
    ps = pageserver_factory(identity=4).start()
    tenant = random_id()
    assert ps.http.tenant_attach(tenant, 2)["shards"] == [{"shard_id": tenant, "node_id": 4}]
    assert ps.stop() == 0
    ps.identity_path.write_text("id = 5\n")
    ps.start()
    assert ps.http.status() == {"id": 5}
    assert ps.http.tenant_detail(tenant)["generation"] == 2


@pytest.mark.slow
@pytest.mark.time_limit(900)
def test_many_tenants_survive_repeated_restarts(pageserver) -> None:
    http = pageserver.http
    expected: dict[str, tuple[int, set[str]]] = {}
    for i in range(40):
        tenant = random_id()
        generation = i + 1
        http.tenant_attach(tenant, generation)
        root = random_id()
        http.timeline_create(tenant, root)
        timelines = {root}
        for _ in range(i % 4):
            child = random_id()
            http.timeline_create(tenant, child, ancestor_timeline_id=root)
            timelines.add(child)
        expected[tenant] = (generation, timelines)

    for round_ in range(6):
        _restart(pageserver, "graceful" if round_ % 2 == 0 else "kill9")
        http = pageserver.http
        state = _snapshot(http)
        assert set(state) == set(expected)
        for tenant, (generation, timelines) in expected.items():
            assert state[tenant]["generation"] == generation
            assert set(state[tenant]["timelines"]) == timelines
        # Bump one tenant's generation each round; it must stick too.
        bumped = sorted(expected)[round_]
        generation, timelines = expected[bumped]
        http.tenant_attach(bumped, generation + 10)
        expected[bumped] = (generation + 10, timelines)
