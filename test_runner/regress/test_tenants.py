"""Tenant routes: legacy create, location_config, list, detail, delete."""

from __future__ import annotations

import pytest

from fixtures.http import PageserverHttpClient
from fixtures.utils import ID_RE, random_id

TENANT_INFO_FIELDS = {"id", "state", "current_physical_size", "attachment_status", "generation"}


def _error(response, status: int) -> str:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("msg"), str), body
    return body["msg"]


def _assert_active_tenant_info(info: dict, tenant_id: str, generation: int) -> None:
    assert TENANT_INFO_FIELDS <= set(info), info
    assert info["id"] == tenant_id
    assert info["state"] == {"slug": "Active"}
    assert info["attachment_status"] == {"slug": "attached"}
    assert info["generation"] == generation
    assert info["current_physical_size"] is None or isinstance(info["current_physical_size"], int)


def _location_config_raw(http: PageserverHttpClient, tenant_id: str, body):
    return http.put(f"/v1/tenant/{tenant_id}/location_config", json=body)


# -- POST /v1/tenant ---------------------------------------------------------


def test_create_with_given_id(pageserver) -> None:
    http = pageserver.http
    tenant = random_id()
    response = http.post("/v1/tenant", json={"new_tenant_id": tenant})
    assert response.status_code == 201, response.text
    assert response.json() == tenant

    detail = http.tenant_detail(tenant)
    _assert_active_tenant_info(detail, tenant, generation=1)
    assert detail["timelines"] == []
    assert "walredo" in detail

    (info,) = http.tenant_list()
    _assert_active_tenant_info(info, tenant, generation=1)
    assert "timelines" not in info


def test_create_generates_id(pageserver) -> None:
    http = pageserver.http
    first = http.tenant_create()
    second = http.tenant_create()
    assert ID_RE.match(first) and ID_RE.match(second)
    assert first != second
    assert {t["id"] for t in http.tenant_list()} == {first, second}


def test_create_with_empty_body(pageserver) -> None:
    response = pageserver.http.post("/v1/tenant")
    assert response.status_code == 201, response.text
    assert ID_RE.match(response.json())


def test_create_with_tenant_config(pageserver) -> None:
    tenant = pageserver.http.tenant_create(random_id(), gc_period="1h", pitr_interval="1 day")
    assert pageserver.http.tenant_detail(tenant)["state"] == {"slug": "Active"}


def test_create_twice_conflicts(pageserver) -> None:
    http = pageserver.http
    tenant = http.tenant_create(random_id())
    _error(http.post("/v1/tenant", json={"new_tenant_id": tenant}), 409)
    assert len(http.tenant_list()) == 1


def test_create_over_location_config_tenant_conflicts(pageserver) -> None:
    http = pageserver.http
    tenant = random_id()
    http.location_config(tenant, "AttachedSingle", generation=4)
    _error(http.post("/v1/tenant", json={"new_tenant_id": tenant}), 409)
    assert http.tenant_detail(tenant)["generation"] == 4


@pytest.mark.parametrize(
    "body",
    [
        {"new_tenant_id": "xyz"},
        {"new_tenant_id": "0" * 31},
        {"new_tenant_id": 12},
        {"gc_period": 5},
        {"gc_period": "whenever"},
        [],
    ],
    ids=["bad-id", "short-id", "numeric-id", "numeric-duration", "bad-duration", "array"],
)
def test_create_bad_body(pageserver, body) -> None:
    _error(pageserver.http.post("/v1/tenant", json=body), 400)
    assert pageserver.http.tenant_list() == []


def test_create_malformed_json(pageserver) -> None:
    response = pageserver.http.post(
        "/v1/tenant", data=b'{"new_tenant_id": ', headers={"Content-Type": "application/json"}
    )
    _error(response, 400)


# -- location_config ---------------------------------------------------------


def test_location_config_attach_creates_tenant(pageserver) -> None:
    http = pageserver.http
    tenant = random_id()
    response = _location_config_raw(http, tenant, {"mode": "AttachedSingle", "generation": 5, "tenant_conf": {}})
    assert response.status_code == 200, response.text
    assert response.json() == {"shards": [{"shard_id": tenant, "node_id": 1}], "stripe_size": None}

    _assert_active_tenant_info(http.tenant_detail(tenant), tenant, generation=5)
    assert [t["id"] for t in http.tenant_list()] == [tenant]


def test_location_config_reports_node_id(pageserver_factory) -> None:
    ps = pageserver_factory(identity=3).start()
    tenant = random_id()
    assert ps.http.tenant_attach(tenant, 2)["shards"] == [{"shard_id": tenant, "node_id": 3}]


@pytest.mark.parametrize("mode", ["AttachedSingle", "AttachedMulti", "AttachedStale"])
def test_location_config_attached_modes(pageserver, mode) -> None:
    http = pageserver.http
    tenant = random_id()
    response = http.location_config(tenant, mode, generation=2)
    assert response["shards"] == [{"shard_id": tenant, "node_id": 1}]
    _assert_active_tenant_info(http.tenant_detail(tenant), tenant, generation=2)


def test_location_config_generations(pageserver) -> None:
    http = pageserver.http
    tenant = random_id()
    http.location_config(tenant, "AttachedSingle", generation=5)

    # Same generation: updated in place.
    http.location_config(tenant, "AttachedMulti", generation=5, tenant_conf={"gc_period": "2h"})
    assert http.tenant_detail(tenant)["generation"] == 5

    # Higher generation: stored.
    http.location_config(tenant, "AttachedSingle", generation=6)
    assert http.tenant_detail(tenant)["generation"] == 6

    # Lower generation: refused, nothing changes.
    msg = _error(_location_config_raw(http, tenant, {"mode": "AttachedSingle", "generation": 3, "tenant_conf": {}}), 400)
    assert msg
    detail = http.tenant_detail(tenant)
    assert detail["generation"] == 6
    assert detail["state"] == {"slug": "Active"}


def test_location_config_over_legacy_created_tenant(pageserver) -> None:
    http = pageserver.http
    tenant = http.tenant_create(random_id())
    http.location_config(tenant, "AttachedSingle", generation=1)
    http.location_config(tenant, "AttachedSingle", generation=2)
    assert http.tenant_detail(tenant)["generation"] == 2
    _error(_location_config_raw(http, tenant, {"mode": "AttachedSingle", "generation": 0, "tenant_conf": {}}), 400)


@pytest.mark.parametrize("mode", ["AttachedSingle", "AttachedMulti", "AttachedStale"])
def test_location_config_attached_needs_generation(pageserver, mode) -> None:
    http = pageserver.http
    tenant = random_id()
    _error(_location_config_raw(http, tenant, {"mode": mode, "tenant_conf": {}}), 400)
    _error(_location_config_raw(http, tenant, {"mode": mode, "generation": None, "tenant_conf": {}}), 400)
    assert http.tenant_list() == []


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "AttachedSingle", "generation": 1, "tenant_conf": {}, "bogus": 1},
        {"mode": "AttachedSingle", "generation": 1},
        {"mode": "Attached", "generation": 1, "tenant_conf": {}},
        {"generation": 1, "tenant_conf": {}},
        {"mode": "AttachedSingle", "generation": "one", "tenant_conf": {}},
        {"mode": "AttachedSingle", "generation": 1, "tenant_conf": {"gc_period": "sometimes"}},
    ],
    ids=["unknown-field", "no-tenant-conf", "bad-mode", "no-mode", "bad-generation", "bad-tenant-conf"],
)
def test_location_config_bad_body(pageserver, body) -> None:
    tenant = random_id()
    _error(_location_config_raw(pageserver.http, tenant, body), 400)
    assert pageserver.http.tenant_list() == []


def test_location_config_malformed_json(pageserver) -> None:
    response = pageserver.http.put(
        f"/v1/tenant/{random_id()}/location_config", data=b"{mode:", headers={"Content-Type": "application/json"}
    )
    _error(response, 400)


def test_location_config_secondary_not_supported(pageserver) -> None:
    http = pageserver.http
    tenant = random_id()
    body = {"mode": "Secondary", "secondary_conf": {"warm": True}, "tenant_conf": {}}
    _error(_location_config_raw(http, tenant, body), 400)
    assert http.tenant_list() == []
    assert http.get(f"/v1/tenant/{tenant}").status_code == 404

    # Nor does it demote an attached tenant.
    http.tenant_attach(tenant, 1)
    _error(_location_config_raw(http, tenant, body), 400)
    assert http.tenant_detail(tenant)["state"] == {"slug": "Active"}


def test_location_config_detach(pageserver) -> None:
    http = pageserver.http
    keep, drop = random_id(), random_id()
    http.tenant_attach(keep, 1)
    http.tenant_attach(drop, 1)
    http.timeline_create(drop, random_id())

    response = _location_config_raw(http, drop, {"mode": "Detached", "tenant_conf": {}})
    assert response.status_code == 200, response.text
    assert response.json() == {"shards": [], "stripe_size": None}

    _error(http.get(f"/v1/tenant/{drop}"), 404)
    _error(http.get(f"/v1/tenant/{drop}/timeline"), 404)
    assert [t["id"] for t in http.tenant_list()] == [keep]
    assert not (pageserver.workdir / "tenants" / drop).exists()

    # Idempotent, also for tenants this node never had.
    assert http.tenant_detach(drop) == {"shards": [], "stripe_size": None}
    assert http.tenant_detach(random_id()) == {"shards": [], "stripe_size": None}

    # A detached tenant can be attached again.
    http.tenant_attach(drop, 2)
    assert http.tenant_detail(drop)["generation"] == 2


# -- ids, detail, delete -----------------------------------------------------


@pytest.mark.parametrize("bad_id", ["not-a-tenant", "0" * 31, "0" * 33, "g" * 32])
def test_malformed_tenant_id_is_400(pageserver, bad_id) -> None:
    http = pageserver.http
    _error(http.get(f"/v1/tenant/{bad_id}"), 400)
    _error(http.delete(f"/v1/tenant/{bad_id}"), 400)
    _error(http.get(f"/v1/tenant/{bad_id}/timeline"), 400)
    _error(_location_config_raw(http, bad_id, {"mode": "AttachedSingle", "generation": 1, "tenant_conf": {}}), 400)
    assert http.tenant_list() == []


def test_unknown_tenant_is_404(pageserver) -> None:
    http = pageserver.http
    tenant = random_id()
    _error(http.get(f"/v1/tenant/{tenant}"), 404)
    _error(http.delete(f"/v1/tenant/{tenant}"), 404)
    _error(http.get(f"/v1/tenant/{tenant}/timeline"), 404)
    _error(http.get(f"/v1/tenant/{tenant}/timeline/{random_id()}"), 404)
    _error(http.post(f"/v1/tenant/{tenant}/timeline", json={"new_timeline_id": random_id()}), 404)


def test_tenant_detail_lists_timelines(pageserver) -> None:
    http = pageserver.http
    tenant = http.tenant_create()
    timelines = {random_id() for _ in range(3)}
    for timeline in timelines:
        http.timeline_create(tenant, timeline)
    assert set(http.tenant_detail(tenant)["timelines"]) == timelines


def test_tenant_delete(pageserver) -> None:
    http = pageserver.http
    keep = http.tenant_create()
    tenant = http.tenant_create()
    http.timeline_create(tenant, random_id())

    response = http.delete(f"/v1/tenant/{tenant}")
    assert response.status_code == 200, response.text
    assert response.json() is None

    _error(http.get(f"/v1/tenant/{tenant}"), 404)
    _error(http.delete(f"/v1/tenant/{tenant}"), 404)
    assert [t["id"] for t in http.tenant_list()] == [keep]
    assert not (pageserver.workdir / "tenants" / tenant).exists()

    # The id is free again.
    assert http.tenant_create(tenant) == tenant
    assert http.tenant_detail(tenant)["timelines"] == []


# -- per-tenant configuration --------------------------------------------------


def test_unknown_tenant_conf_key_is_400(pageserver) -> None:
    http = pageserver.http
    _error(http.post("/v1/tenant", json={"new_tenant_id": random_id(), "no_such_knob": 1}), 400)
    body = {"mode": "AttachedSingle", "generation": 1, "tenant_conf": {"no_such_knob": 1}}
    _error(_location_config_raw(http, random_id(), body), 400)
    assert http.tenant_list() == []


def test_tenant_config_overrides_and_node_defaults(pageserver_factory) -> None:
    ps = pageserver_factory({"tenant_config": {"gc_period": "5h"}}).start()
    http = ps.http
    plain = http.tenant_create()
    legacy = http.tenant_create(gc_period="2h")
    attached = random_id()
    http.location_config(attached, "AttachedSingle", generation=1, tenant_conf={"gc_period": "3h"})

    configs = {t: http.tenant_config(t) for t in (plain, legacy, attached)}
    for config in configs.values():
        assert set(config) >= {"tenant_specific_overrides", "effective_config"}, config
    assert configs[plain]["tenant_specific_overrides"].get("gc_period") is None
    for tenant in (legacy, attached):
        overrides, effective = configs[tenant]["tenant_specific_overrides"], configs[tenant]["effective_config"]
        assert overrides.get("gc_period") is not None
        assert effective["gc_period"] == overrides["gc_period"]
    effective_periods = {t: c["effective_config"]["gc_period"] for t, c in configs.items()}
    assert len(set(effective_periods.values())) == 3, effective_periods
    # Keys without an override come from the node defaults, the same for every tenant.
    assert len({c["effective_config"]["pitr_interval"] for c in configs.values()}) == 1

    # Same generation: the override is replaced in place.
    http.location_config(attached, "AttachedSingle", generation=1, tenant_conf={})
    config = http.tenant_config(attached)
    assert config["tenant_specific_overrides"].get("gc_period") is None
    assert config["effective_config"]["gc_period"] == effective_periods[plain]
