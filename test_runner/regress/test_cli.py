"""The command line: --version, --help, --init, -c overrides, no config file."""

from __future__ import annotations

import re
import tomllib

import pytest
import requests

from fixtures.pageserver import config_override_args
from fixtures.ports import free_port


def test_version(run_cli) -> None:
    result = run_cli(["--version"])
    assert result.returncode == 0, result.stderr
    assert re.match(r"^pageserver \d+\.\d+\.\d+", result.stdout), result.stdout


def test_help(run_cli) -> None:
    result = run_cli(["--help"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Usage" in text
    for flag in ("--workdir", "-D", "-c", "--init", "--version", "--help"):
        assert flag in text, f"{flag} missing from --help:\n{text}"


def test_unknown_flag_is_rejected(run_cli) -> None:
    result = run_cli(["--no-such-flag"])
    assert result.returncode != 0
    assert "--no-such-flag" in result.stderr


def test_init_writes_config_and_identity(pageserver_factory, run_cli, tmp_path) -> None:
    workdir = tmp_path / "fresh"
    http_port, pg_port = free_port(), free_port()
    result = run_cli(
        ["-D", str(workdir), "--init"]
        + config_override_args(
            {"listen_http_addr": f"127.0.0.1:{http_port}", "listen_pg_addr": f"127.0.0.1:{pg_port}"}
        )
    )
    assert result.returncode == 0, result.stderr

    config = tomllib.loads((workdir / "pageserver.toml").read_text())
    assert config["listen_http_addr"] == f"127.0.0.1:{http_port}"
    assert config["listen_pg_addr"] == f"127.0.0.1:{pg_port}"
    identity = tomllib.loads((workdir / "identity.toml").read_text())
    assert identity == {"id": 1}

    # The written file is a working configuration: the server starts from it alone.
    server = pageserver_factory(config_file=False, name="fresh")
    assert server.workdir == workdir
    server.extra_args = []  # no -c: everything comes from the --init output
    server.http_port = http_port
    server.start()
    assert server.http.status() == {"id": 1}


def test_second_init_fails(run_cli, tmp_path) -> None:
    workdir = tmp_path / "twice"
    first = run_cli(["-D", str(workdir), "--init"])
    assert first.returncode == 0, first.stderr
    written = (workdir / "pageserver.toml").read_bytes()

    second = run_cli(["-D", str(workdir), "--init", "-c", "page_cache_size=1"])
    assert second.returncode == 1
    assert "pageserver.toml already exists" in second.stderr
    assert (workdir / "pageserver.toml").read_bytes() == written


def test_init_rejects_bad_override(run_cli, tmp_path) -> None:
    workdir = tmp_path / "bad_init"
    result = run_cli(["-D", str(workdir), "--init", "-c", 'page_cache_size="lots"'])
    assert result.returncode == 1
    assert "page_cache_size" in result.stderr
    assert not (workdir / "pageserver.toml").exists()


def test_override_beats_config_file(pageserver_factory) -> None:
    ps = pageserver_factory()
    file_port = ps.http_port
    override_port = free_port()
    ps.extra_args = config_override_args({"listen_http_addr": f"127.0.0.1:{override_port}"})
    ps.http_port = override_port
    ps.start()
    assert ps.http.status() == {"id": 1}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{file_port}/v1/status", timeout=2)


def test_repeated_override_last_wins(pageserver_factory) -> None:
    ps = pageserver_factory()
    loser, winner = free_port(), free_port()
    ps.extra_args = config_override_args({"listen_http_addr": f"127.0.0.1:{loser}"}) + config_override_args(
        {"listen_http_addr": f"127.0.0.1:{winner}"}
    )
    ps.http_port = winner
    ps.start()
    assert ps.http.status() == {"id": 1}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{loser}/v1/status", timeout=2)


def test_starts_without_config_file(pageserver_factory) -> None:
    ps = pageserver_factory(config_file=False)
    assert not ps.config_path.exists()
    ps.start()
    assert ps.http.status() == {"id": 1}
    assert ps.http.tenant_list() == []


def test_identity_file_sets_node_id(pageserver_factory) -> None:
    ps = pageserver_factory(identity=7).start()
    assert ps.http.status() == {"id": 7}


def test_dotted_and_table_overrides(pageserver_factory, tmp_path) -> None:
    remote = tmp_path / "elsewhere_remote"
    ps = pageserver_factory(
        extra_args=config_override_args(
            {"tenant_config.gc_period": "1h", "remote_storage": {"local_path": str(remote)}}
        )
    )
    ps.start()
    assert ps.http.status() == {"id": 1}
    log = ps.log_text()
    assert "unknown configuration key" not in log, log


def test_malformed_override_fails(pageserver_factory) -> None:
    ps = pageserver_factory()
    result = ps.run_cli(["-c", "page_cache_size"])
    assert result.returncode == 1
    assert "Error:" in result.stderr
    assert "panicked" not in result.stderr
