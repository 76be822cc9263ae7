"""Process lifecycle: pid file lock, signals, panics and the failpoint hook."""

from __future__ import annotations

import signal
import socket
import time

import pytest
import requests

from fixtures.utils import wait_until


def test_pid_file_holds_pid(pageserver) -> None:
    assert pageserver.pid_path.read_text().strip() == str(pageserver.pid)


def test_second_process_on_same_workdir_exits(pageserver) -> None:
    started = time.monotonic()
    result = pageserver.run_cli(timeout=10)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert "already running" in result.stderr
    assert str(pageserver.pid_path.name) in result.stderr
    assert elapsed < 10
    # The first process is unaffected and keeps its pid file.
    assert pageserver.is_running()
    assert pageserver.http.status() == {"id": 1}
    assert pageserver.pid_path.read_text().strip() == str(pageserver.pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_exits_zero(pageserver, sig) -> None:
    pageserver.http.tenant_create()
    pageserver.send_signal(sig)
    assert pageserver.wait_exit(timeout=15) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{pageserver.http_addr}/v1/status", timeout=2)


def test_sigquit_exits_immediately(pageserver) -> None:
    pageserver.send_signal(signal.SIGQUIT)
    code = pageserver.wait_exit(timeout=5)
    # Exits through its own handler (code 1), not killed by the signal's default action.
    assert code == 1


def test_restart_after_graceful_stop_reuses_workdir(pageserver) -> None:
    first_pid = pageserver.pid
    pageserver.restart()
    assert pageserver.pid != first_pid
    assert pageserver.pid_path.read_text().strip() == str(pageserver.pid)
    assert pageserver.http.status() == {"id": 1}


def test_start_after_kill9_with_stale_pid_file(pageserver) -> None:
    old_pid = pageserver.pid
    pageserver.kill9()
    assert pageserver.pid_path.exists()
    pageserver.start()
    assert pageserver.pid != old_pid
    assert pageserver.pid_path.read_text().strip() == str(pageserver.pid)


def test_panic_in_request_handler_ends_process(pageserver_factory) -> None:
    ps = pageserver_factory({"dev_mode": True}).start()
    ps.allow_panic = True
    ps.http.configure_failpoints(("http-request-panic", "panic"))
    try:
        requests.get(f"http://{ps.http_addr}/v1/tenant", timeout=10)
    except requests.RequestException:
        pass  # the connection may die with the process
    code = ps.wait_exit(timeout=10)
    assert code == 101, ps.log_text()
    log = ps.log_text()
    assert "panic" in log.lower()
    error_lines = [line for line in log.splitlines() if "ERROR" in line and "panic" in line.lower()]
    assert error_lines, log


def test_failpoint_can_be_turned_off(pageserver_factory) -> None:
    ps = pageserver_factory({"dev_mode": True}).start()
    ps.http.configure_failpoints(("http-request-panic", "panic"))
    ps.http.configure_failpoints(("http-request-panic", "off"))
    assert ps.http.tenant_list() == []
    assert ps.is_running()


def test_failpoint_with_bad_action_is_rejected(pageserver_factory) -> None:
    ps = pageserver_factory({"dev_mode": True}).start()
    response = ps.http.put("/v1/failpoints", json=[{"name": "http-request-panic", "actions": "explode"}])
    assert response.status_code == 400
    assert "msg" in response.json()
    assert ps.http.tenant_list() == []


def test_failpoints_route_absent_without_dev_mode(pageserver) -> None:
    response = pageserver.http.put("/v1/failpoints", json=[{"name": "http-request-panic", "actions": "panic"}])
    assert response.status_code == 404
    assert "msg" in response.json()
    # And the failpoint was not armed.
    assert pageserver.http.tenant_list() == []
    assert pageserver.is_running()


def test_process_survives_client_disconnects(pageserver) -> None:
    """Half-sent requests must not take the server down."""
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", pageserver.http_port), timeout=5) as sock:
            sock.sendall(b"POST /v1/tenant HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    wait_until(lambda: pageserver.http.status() == {"id": 1}, timeout=10, description="status answers")
    assert pageserver.is_running()
