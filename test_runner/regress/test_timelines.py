"""Timeline routes: bootstrap and branch creation, list, detail, delete."""

from __future__ import annotations

import pytest

from fixtures.utils import LSN_RE, parse_lsn, random_id, wait_until

TIMELINE_INFO_FIELDS = {
    "tenant_id",
    "timeline_id",
    "ancestor_timeline_id",
    "ancestor_lsn",
    "last_record_lsn",
    "prev_record_lsn",
    "disk_consistent_lsn",
    "remote_consistent_lsn",
    "remote_consistent_lsn_visible",
    "initdb_lsn",
    "current_logical_size",
    "current_physical_size",
    "pg_version",
    "state",
    "walreceiver_status",
}
LSN_FIELDS = ("last_record_lsn", "disk_consistent_lsn", "remote_consistent_lsn", "initdb_lsn")


def _error(response, status: int) -> str:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("msg"), str), body
    return body["msg"]


def _assert_timeline_info(info: dict, tenant: str, timeline: str) -> None:
    assert TIMELINE_INFO_FIELDS <= set(info), sorted(TIMELINE_INFO_FIELDS - set(info))
    assert info["tenant_id"] == tenant
    assert info["timeline_id"] == timeline
    assert info["pg_version"] == 15
    assert info["state"] == "Active"
    for field in LSN_FIELDS:
        assert isinstance(info[field], str) and LSN_RE.match(info[field]), f"{field}={info[field]!r}"
    for field in ("ancestor_lsn", "prev_record_lsn"):
        assert info[field] is None or LSN_RE.match(info[field]), f"{field}={info[field]!r}"


@pytest.fixture
def tenant(pageserver) -> str:
    return pageserver.http.tenant_create()


def _create_raw(pageserver, tenant: str, body):
    return pageserver.http.post(f"/v1/tenant/{tenant}/timeline", json=body)


def test_bootstrap_timeline(pageserver, tenant) -> None:
    http = pageserver.http
    timeline = random_id()
    response = _create_raw(pageserver, tenant, {"new_timeline_id": timeline, "pg_version": 15})
    assert response.status_code == 201, response.text
    info = response.json()
    _assert_timeline_info(info, tenant, timeline)
    assert info["ancestor_timeline_id"] is None
    assert info["ancestor_lsn"] is None
    # initdb's cluster, imported at its checkpoint and already on disk.
    lsn = parse_lsn(info["last_record_lsn"])
    assert lsn > 0x0100_0000, info
    assert parse_lsn(info["initdb_lsn"]) == lsn, info
    assert parse_lsn(info["disk_consistent_lsn"]) == lsn, info

    assert http.timeline_detail(tenant, timeline) == info
    assert http.timeline_list(tenant) == [info]
    assert http.tenant_detail(tenant)["timelines"] == [timeline]


def test_bootstrap_defaults_to_pg15(pageserver, tenant) -> None:
    timeline = random_id()
    info = pageserver.http.timeline_create(tenant, timeline)
    _assert_timeline_info(info, tenant, timeline)


def test_identical_retry_is_201(pageserver, tenant) -> None:
    http = pageserver.http
    timeline = random_id()
    first = http.timeline_create(tenant, timeline, pg_version=15)
    second = http.timeline_create(tenant, timeline, pg_version=15)
    assert second == first
    assert len(http.timeline_list(tenant)) == 1


def test_conflicting_create_is_409(pageserver, tenant) -> None:
    http = pageserver.http
    parent = random_id()
    http.timeline_create(tenant, parent)
    child = random_id()
    http.timeline_create(tenant, child, ancestor_timeline_id=parent)
    # Same id, but now as a bootstrap timeline; and the parent id as a branch.
    _error(_create_raw(pageserver, tenant, {"new_timeline_id": child, "pg_version": 15}), 409)
    _error(_create_raw(pageserver, tenant, {"new_timeline_id": parent, "ancestor_timeline_id": child}), 409)
    assert http.timeline_detail(tenant, child)["ancestor_timeline_id"] == parent
    assert http.timeline_detail(tenant, parent)["ancestor_timeline_id"] is None


def test_branch(pageserver, tenant) -> None:
    http = pageserver.http
    parent = random_id()
    parent_info = http.timeline_create(tenant, parent)
    child = random_id()
    response = _create_raw(pageserver, tenant, {"new_timeline_id": child, "ancestor_timeline_id": parent})
    assert response.status_code == 201, response.text
    info = response.json()
    _assert_timeline_info(info, tenant, child)
    assert info["ancestor_timeline_id"] == parent
    # Branched at the parent's last record LSN (0/0 may be rendered as null).
    branch_point = parse_lsn(info["ancestor_lsn"]) if info["ancestor_lsn"] is not None else 0
    assert branch_point == parse_lsn(parent_info["last_record_lsn"])
    assert parse_lsn(info["last_record_lsn"]) >= branch_point

    assert http.timeline_detail(tenant, child) == info
    assert {t["timeline_id"] for t in http.timeline_list(tenant)} == {parent, child}

    # A branch of a branch; a branch accepts (and inherits) pg_version.
    grandchild = random_id()
    info2 = http.timeline_create(tenant, grandchild, ancestor_timeline_id=child, pg_version=15)
    assert info2["ancestor_timeline_id"] == child
    assert info2["pg_version"] == 15

    # Identical branch retry is also 201.
    assert http.timeline_create(tenant, child, ancestor_timeline_id=parent)["timeline_id"] == child


def test_branch_from_missing_ancestor_is_404(pageserver, tenant) -> None:
    http = pageserver.http
    child = random_id()
    _error(_create_raw(pageserver, tenant, {"new_timeline_id": child, "ancestor_timeline_id": random_id()}), 404)
    assert http.timeline_list(tenant) == []


def test_branch_ancestor_in_other_tenant_is_404(pageserver, tenant) -> None:
    http = pageserver.http
    other = http.tenant_create()
    foreign = random_id()
    http.timeline_create(other, foreign)
    _error(_create_raw(pageserver, tenant, {"new_timeline_id": random_id(), "ancestor_timeline_id": foreign}), 404)


@pytest.mark.parametrize("version", [14, 16, 17, 0])
def test_unsupported_pg_version_is_400(pageserver, tenant, version) -> None:
    _error(_create_raw(pageserver, tenant, {"new_timeline_id": random_id(), "pg_version": version}), 400)
    assert pageserver.http.timeline_list(tenant) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"pg_version": 15},
        {"new_timeline_id": "zz"},
        {"new_timeline_id": "0" * 31},
        {"new_timeline_id": "0" * 32, "pg_version": "fifteen"},
        {"new_timeline_id": "0" * 32, "ancestor_timeline_id": "nope"},
        "just a string",
    ],
    ids=["empty", "no-id", "bad-id", "short-id", "bad-version", "bad-ancestor", "string"],
)
def test_bad_create_body_is_400(pageserver, tenant, body) -> None:
    _error(_create_raw(pageserver, tenant, body), 400)
    assert pageserver.http.timeline_list(tenant) == []


def test_malformed_json_is_400(pageserver, tenant) -> None:
    response = pageserver.http.post(
        f"/v1/tenant/{tenant}/timeline", data=b'{"new_timeline_id": "', headers={"Content-Type": "application/json"}
    )
    _error(response, 400)


def test_malformed_timeline_id_in_path_is_400(pageserver, tenant) -> None:
    http = pageserver.http
    _error(http.get(f"/v1/tenant/{tenant}/timeline/not-a-timeline"), 400)
    _error(http.delete(f"/v1/tenant/{tenant}/timeline/{'a' * 31}"), 400)


def test_unknown_timeline_is_404(pageserver, tenant) -> None:
    _error(pageserver.http.get(f"/v1/tenant/{tenant}/timeline/{random_id()}"), 404)
    _error(pageserver.http.delete(f"/v1/tenant/{tenant}/timeline/{random_id()}"), 404)


def test_timeline_delete(pageserver, tenant) -> None:
    http = pageserver.http
    keep, drop = random_id(), random_id()
    http.timeline_create(tenant, keep)
    http.timeline_create(tenant, drop)

    response = http.delete(f"/v1/tenant/{tenant}/timeline/{drop}")
    assert response.status_code == 202, response.text
    assert response.json() is None

    wait_until(
        lambda: http.get(f"/v1/tenant/{tenant}/timeline/{drop}").status_code == 404,
        timeout=10,
        description="deleted timeline answering 404",
    )
    _error(http.delete(f"/v1/tenant/{tenant}/timeline/{drop}"), 404)
    assert [t["timeline_id"] for t in http.timeline_list(tenant)] == [keep]
    assert http.tenant_detail(tenant)["timelines"] == [keep]
    wait_until(
        lambda: not (pageserver.workdir / "tenants" / tenant / "timelines" / drop).exists(),
        timeout=10,
        description="deleted timeline's directory removed",
    )


def test_delete_timeline_with_children_is_412(pageserver, tenant) -> None:
    http = pageserver.http
    parent, child = random_id(), random_id()
    http.timeline_create(tenant, parent)
    http.timeline_create(tenant, child, ancestor_timeline_id=parent)

    _error(http.delete(f"/v1/tenant/{tenant}/timeline/{parent}"), 412)
    assert http.timeline_detail(tenant, parent)["state"] == "Active"

    http.timeline_delete(tenant, child)
    wait_until(
        lambda: http.get(f"/v1/tenant/{tenant}/timeline/{child}").status_code == 404,
        timeout=10,
        description="child gone",
    )
    http.timeline_delete(tenant, parent)


def test_delete_in_unknown_tenant_is_412(pageserver) -> None:
    msg = _error(pageserver.http.delete(f"/v1/tenant/{random_id()}/timeline/{random_id()}"), 412)
    assert "Requested tenant is missing" in msg


def test_timelines_are_per_tenant(pageserver) -> None:
    http = pageserver.http
    a, b = http.tenant_create(), http.tenant_create()
    timeline = random_id()
    http.timeline_create(a, timeline)
    assert http.timeline_list(b) == []
    _error(http.get(f"/v1/tenant/{b}/timeline/{timeline}"), 404)
    # The same timeline id may exist in another tenant.
    info = http.timeline_create(b, timeline)
    assert info["tenant_id"] == b
