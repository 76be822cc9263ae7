"""``http_auth_type = "NeonJWT"``: 401 for missing or unverifiable tokens, 403 for
tokens without permission, scopes ``pageserverapi`` and ``tenant``, Ed25519 and RSA
keys, one key file or a directory of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.auth import JwtKey
from fixtures.pageserver import PageserverProcess
from fixtures.utils import random_id


def _auth_config(key_path: Path) -> dict:
    return {"http_auth_type": "NeonJWT", "auth_validation_public_key_path": str(key_path)}


@dataclass
class AuthSetup:
    ps: PageserverProcess
    key: JwtKey
    tenant_a: str
    timeline_a: str
    tenant_b: str
    timeline_b: str


@pytest.fixture
def auth_env(pageserver_factory, jwt_key, tmp_path) -> AuthSetup:
    key_path = jwt_key.write_public_pem(tmp_path / "keys" / "auth_public_key.pem")
    ps = pageserver_factory(_auth_config(key_path)).start()
    ps.auth_token = jwt_key.pageserverapi_token()
    tenant_a, tenant_b = ps.http.tenant_create(), ps.http.tenant_create()
    timeline_a, timeline_b = random_id(), random_id()
    ps.http.timeline_create(tenant_a, timeline_a)
    ps.http.timeline_create(tenant_b, timeline_b)
    return AuthSetup(ps, jwt_key, tenant_a, timeline_a, tenant_b, timeline_b)


def _tenant_routes(tenant: str, timeline: str) -> list[tuple[str, str, object, int]]:
    """Non-destructive tenant-scoped requests with their success status."""
    return [
        ("GET", f"/v1/tenant/{tenant}", None, 200),
        ("GET", f"/v1/tenant/{tenant}/timeline", None, 200),
        ("GET", f"/v1/tenant/{tenant}/timeline/{timeline}", None, 200),
        ("POST", f"/v1/tenant/{tenant}/timeline", {"new_timeline_id": random_id()}, 201),
        (
            "PUT",
            f"/v1/tenant/{tenant}/location_config",
            {"mode": "AttachedSingle", "generation": 1, "tenant_conf": {}},
            200,
        ),
    ]


NODE_ROUTES: list[tuple[str, str, object, int]] = [
    ("GET", "/v1/tenant", None, 200),
    ("POST", "/v1/tenant", {}, 201),
]


def _send(ps: PageserverProcess, token: str | None, method: str, path: str, body: object, **headers: str):
    kwargs = {"json": body} if body is not None else {}
    return ps.http.request(method, path, token=token, headers=headers or None, **kwargs)


def _assert_status(response, status: int) -> None:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    )
    if status >= 400:
        assert isinstance(response.json().get("msg"), str), response.text


def test_open_routes_need_no_token(auth_env) -> None:
    ps = auth_env.ps
    assert ps.http.request("GET", "/v1/status", token=None).json() == {"id": 1}
    metrics = ps.http.request("GET", "/metrics", token=None)
    assert metrics.status_code == 200 and "process_" in metrics.text


def test_unauthenticated_requests_are_401(auth_env, rsa_jwt_key) -> None:
    env = auth_env
    other_key = JwtKey.ed25519()
    good = env.key.pageserverapi_token()
    header, payload, signature = good.split(".")
    tampered_payload = JwtKey.ed25519().pageserverapi_token(extra="x").split(".")[1]
    bad_tokens = {
        "garbage": "garbage",
        "other-key": other_key.pageserverapi_token(),
        "rsa-key-not-configured": rsa_jwt_key.pageserverapi_token(),
        "expired": env.key.expired_token(),
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "unsigned": f"{header}.{payload}.",
    }
    routes = _tenant_routes(env.tenant_a, env.timeline_a) + NODE_ROUTES
    tenants_before = {t["id"] for t in env.ps.http.tenant_list()}
    for method, path, body, _ in routes:
        _assert_status(_send(env.ps, None, method, path, body), 401)
        _assert_status(_send(env.ps, None, method, path, body, Authorization=f"Basic {good}"), 401)
        _assert_status(_send(env.ps, None, method, path, body, Authorization="Bearer "), 401)
        for name, token in bad_tokens.items():
            response = _send(env.ps, token, method, path, body)
            assert response.status_code == 401, f"{name}: {method} {path} -> {response.status_code} {response.text}"
    for method, path, body, _ in [
        ("DELETE", f"/v1/tenant/{env.tenant_a}/timeline/{env.timeline_a}", None, 202),
        ("DELETE", f"/v1/tenant/{env.tenant_a}", None, 200),
    ]:
        _assert_status(_send(env.ps, None, method, path, body), 401)
        _assert_status(_send(env.ps, bad_tokens["other-key"], method, path, body), 401)
    # Nothing was changed by the refused requests.
    assert {t["id"] for t in env.ps.http.tenant_list()} == tenants_before
    assert [t["timeline_id"] for t in env.ps.http.timeline_list(env.tenant_a)] == [env.timeline_a]


def test_auth_is_checked_before_lookup(auth_env) -> None:
    env = auth_env
    unknown = random_id()
    _assert_status(_send(env.ps, None, "GET", f"/v1/tenant/{unknown}", None), 401)
    _assert_status(_send(env.ps, env.key.pageserverapi_token(), "GET", f"/v1/tenant/{unknown}", None), 404)
    _assert_status(_send(env.ps, env.key.tenant_token(unknown), "GET", f"/v1/tenant/{unknown}", None), 404)
    _assert_status(_send(env.ps, env.key.tenant_token(env.tenant_a), "GET", f"/v1/tenant/{unknown}", None), 403)


def test_pageserverapi_token_may_do_everything(auth_env) -> None:
    env = auth_env
    token = env.key.pageserverapi_token()
    for tenant, timeline in ((env.tenant_a, env.timeline_a), (env.tenant_b, env.timeline_b)):
        for method, path, body, status in _tenant_routes(tenant, timeline):
            _assert_status(_send(env.ps, token, method, path, body), status)
    for method, path, body, status in NODE_ROUTES:
        _assert_status(_send(env.ps, token, method, path, body), status)
    _assert_status(_send(env.ps, token, "DELETE", f"/v1/tenant/{env.tenant_b}/timeline/{env.timeline_b}", None), 202)
    _assert_status(_send(env.ps, token, "DELETE", f"/v1/tenant/{env.tenant_b}", None), 200)


def test_tenant_token_is_limited_to_its_tenant(auth_env) -> None:
    env = auth_env
    token_a = env.key.tenant_token(env.tenant_a)
    timelines_b = env.ps.http.timeline_list(env.tenant_b)

    for method, path, body, _ in _tenant_routes(env.tenant_b, env.timeline_b):
        _assert_status(_send(env.ps, token_a, method, path, body), 403)
    _assert_status(_send(env.ps, token_a, "DELETE", f"/v1/tenant/{env.tenant_b}/timeline/{env.timeline_b}", None), 403)
    _assert_status(_send(env.ps, token_a, "DELETE", f"/v1/tenant/{env.tenant_b}", None), 403)
    for method, path, body, _ in NODE_ROUTES:
        _assert_status(_send(env.ps, token_a, method, path, body), 403)

    # Tenant B is untouched, and no tenant was created.
    assert env.ps.http.timeline_list(env.tenant_b) == timelines_b
    assert {t["id"] for t in env.ps.http.tenant_list()} == {env.tenant_a, env.tenant_b}

    for method, path, body, status in _tenant_routes(env.tenant_a, env.timeline_a):
        _assert_status(_send(env.ps, token_a, method, path, body), status)
    _assert_status(_send(env.ps, token_a, "DELETE", f"/v1/tenant/{env.tenant_a}/timeline/{env.timeline_a}", None), 202)
    _assert_status(_send(env.ps, token_a, "DELETE", f"/v1/tenant/{env.tenant_a}", None), 200)
    assert {t["id"] for t in env.ps.http.tenant_list()} == {env.tenant_b}


@pytest.mark.parametrize(
    "make_token",
    [
        lambda key, tenant: key.token("safekeeperdata", tenant),
        lambda key, tenant: key.token("admin", tenant),
        lambda key, tenant: key.token("tenant", None),
    ],
    ids=["safekeeperdata", "admin", "tenant-without-id"],
)
def test_other_scopes_are_403(auth_env, make_token) -> None:
    env = auth_env
    token = make_token(env.key, env.tenant_a)
    for method, path, body, _ in _tenant_routes(env.tenant_a, env.timeline_a) + NODE_ROUTES:
        _assert_status(_send(env.ps, token, method, path, body), 403)


def test_rsa_key(pageserver_factory, rsa_jwt_key, jwt_key, tmp_path) -> None:
    key_path = rsa_jwt_key.write_public_pem(tmp_path / "rsa.pem")
    ps = pageserver_factory(_auth_config(key_path)).start()
    rsa_client = ps.http_client(rsa_jwt_key.pageserverapi_token())
    tenant = rsa_client.tenant_create()
    assert [t["id"] for t in rsa_client.tenant_list()] == [tenant]
    tenant_client = ps.http_client(rsa_jwt_key.tenant_token(tenant))
    assert tenant_client.tenant_detail(tenant)["id"] == tenant
    _assert_status(_send(ps, jwt_key.pageserverapi_token(), "GET", "/v1/tenant", None), 401)


def test_directory_of_keys(pageserver_factory, rsa_jwt_key, jwt_key, tmp_path) -> None:
    key_dir = tmp_path / "keys"
    jwt_key.write_public_pem(key_dir / "ed25519.pem")
    rsa_jwt_key.write_public_pem(key_dir / "rsa.pem")
    ps = pageserver_factory(_auth_config(key_dir)).start()

    tenant = ps.http_client(jwt_key.pageserverapi_token()).tenant_create()
    assert ps.http_client(rsa_jwt_key.pageserverapi_token()).tenant_detail(tenant)["id"] == tenant
    assert ps.http_client(rsa_jwt_key.tenant_token(tenant)).timeline_list(tenant) == []
    _assert_status(_send(ps, JwtKey.ed25519().pageserverapi_token(), "GET", "/v1/tenant", None), 401)
    _assert_status(_send(ps, JwtKey.rsa().pageserverapi_token(), "GET", "/v1/tenant", None), 401)


def test_missing_key_file_fails_startup(pageserver_factory, tmp_path) -> None:
    ps = pageserver_factory(_auth_config(tmp_path / "no_such_key.pem"))
    result = ps.run_cli(timeout=15)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Error:" in result.stderr
    assert "no_such_key.pem" in result.stderr
    assert "panicked" not in result.stderr


def test_trust_mode_ignores_tokens(pageserver) -> None:
    response = pageserver.http.request("GET", "/v1/tenant", token="garbage")
    assert response.status_code == 200
