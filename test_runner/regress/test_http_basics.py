"""Node-wide HTTP behaviour: status, metrics, routing errors, common headers."""

from __future__ import annotations

import pytest

from fixtures.metrics import find_samples, parse_metrics, sample_value
from fixtures.utils import random_id

LAUNCH_HEADER = "PAGESERVER_LAUNCH_TIMESTAMP"


def _assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("msg"), str), body
    return body


def test_status(pageserver) -> None:
    response = pageserver.http.get("/v1/status")
    assert response.status_code == 200
    assert response.headers.get("Content-Type", "").startswith("application/json")
    assert response.json() == {"id": 1}


@pytest.mark.parametrize("path", ["/v2/status", "/v1/nonsense", "/", "/v1/tenant/{tenant}/nonsense"])
def test_unknown_route_is_404(pageserver, path) -> None:
    response = pageserver.http.get(path.format(tenant=random_id()))
    assert _assert_json_error(response, 404) == {"msg": "page not found"}


@pytest.mark.parametrize(
    "method, path",
    [("DELETE", "/v1/status"), ("POST", "/metrics"), ("PATCH", "/v1/tenant"), ("PUT", "/v1/tenant/{tenant}")],
)
def test_wrong_method_is_405(pageserver, method, path) -> None:
    response = pageserver.http.request(method, path.format(tenant=random_id()), json={})
    _assert_json_error(response, 405)


def test_launch_timestamp_header_everywhere(pageserver) -> None:
    tenant = pageserver.http.tenant_create()
    responses = [
        pageserver.http.get("/v1/status"),
        pageserver.http.get("/metrics"),
        pageserver.http.get("/v1/tenant"),
        pageserver.http.get(f"/v1/tenant/{tenant}"),
        pageserver.http.get(f"/v1/tenant/{random_id()}"),  # 404
        pageserver.http.get("/v1/tenant/not-an-id"),  # 400
        pageserver.http.get("/no/such/route"),  # 404
        pageserver.http.request("DELETE", "/v1/status"),  # 405
    ]
    values = {r.headers.get(LAUNCH_HEADER) for r in responses}
    assert None not in values, [dict(r.headers) for r in responses]
    assert len(values) == 1, values
    (first_launch,) = values
    assert first_launch.strip()

    pageserver.restart()
    second_launch = pageserver.http.get("/v1/status").headers.get(LAUNCH_HEADER)
    assert second_launch and second_launch != first_launch


def test_metrics_exposition(pageserver) -> None:
    http = pageserver.http
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers.get("Content-Type", "").startswith("text/plain")
    samples = parse_metrics(response.text)
    assert any(s.name.startswith("process_") for s in samples), response.text[:2000]
    assert any(s.name == "process_cpu_seconds_total" or s.name == "process_resident_memory_bytes" for s in samples)

    before = sample_value(samples, "pageserver_http_requests_total", method="GET", route="/v1/tenant", status="200")
    for _ in range(3):
        http.tenant_list()
    samples = parse_metrics(http.metrics())
    after = sample_value(samples, "pageserver_http_requests_total", method="GET", route="/v1/tenant", status="200")
    assert after - before == 3, find_samples(samples, "pageserver_http_requests_total")

    histogram = find_samples(samples, "pageserver_http_request_duration_seconds_count", method="GET", route="/v1/tenant")
    assert histogram and sum(s.value for s in histogram) >= 3
    assert find_samples(samples, "pageserver_http_request_duration_seconds_bucket", method="GET", route="/v1/tenant")


def test_metrics_use_route_templates(pageserver) -> None:
    http = pageserver.http
    tenant = http.tenant_create()
    http.tenant_detail(tenant)
    assert http.get(f"/v1/tenant/{random_id()}").status_code == 404
    samples = parse_metrics(http.metrics())
    requests_total = find_samples(samples, "pageserver_http_requests_total")
    assert requests_total
    for sample in requests_total:
        assert set(sample.labels) >= {"method", "route", "status"}, sample
        assert tenant not in sample.labels["route"], f"concrete id in route label: {sample}"
    detail = [
        s for s in requests_total if s.labels["method"] == "GET" and s.labels["status"] in ("200", "404")
        and s.labels["route"].startswith("/v1/tenant/")
    ]
    assert {s.labels["status"] for s in detail} == {"200", "404"}, requests_total
