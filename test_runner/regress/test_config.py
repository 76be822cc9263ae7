"""Configuration handling: unknown keys, bad values, not-yet-effective keys, JSON logs."""

from __future__ import annotations

import json

import pytest

from fixtures.pageserver import config_override_args


def _lines_with(lines: list[str], *needles: str) -> list[str]:
    return [line for line in lines if all(n in line for n in needles)]


@pytest.mark.parametrize(
    "source, key",
    [
        ("file", "frobnicate_level"),
        ("file", "tenant_config.xyzzy_knob"),
        ("override", "frobnicate_level"),
        ("override", "tenant_config.xyzzy_knob"),
    ],
)
def test_unknown_key_warns_once_and_starts(pageserver_factory, source, key) -> None:
    if source == "file":
        if key.startswith("tenant_config."):
            config = {"tenant_config": {key.split(".", 1)[1]: 1}}
        else:
            config = {key: 1}
        ps = pageserver_factory(config)
    else:
        ps = pageserver_factory(extra_args=config_override_args({key: 1}))
    ps.start()
    assert ps.http.status() == {"id": 1}

    lines = ps.log_lines()
    warnings = _lines_with(lines, "unknown configuration key", key)
    assert len(warnings) == 1, "\n".join(lines)
    assert "WARN" in warnings[0]
    # No second warning names the same key some other way.
    assert len(_lines_with(lines, "WARN", key)) == 1, "\n".join(lines)


def test_each_unknown_key_is_named(pageserver_factory) -> None:
    ps = pageserver_factory({"alpha_knob": True, "tenant_config": {"beta_knob": "x", "gc_period": "1h"}}).start()
    lines = ps.log_lines()
    assert len(_lines_with(lines, "unknown configuration key", "alpha_knob")) == 1
    assert len(_lines_with(lines, "unknown configuration key", "tenant_config.beta_knob")) == 1
    # A valid tenant_config key is not reported as unknown.
    assert not _lines_with(lines, "unknown configuration key", "gc_period")


BAD_VALUES = [
    # key, TOML value as written, text that must appear in the message
    ("page_cache_size", '"lots"', "lots"),
    ("listen_http_addr", "54321", "54321"),
    ("wait_lsn_timeout", '"soon"', "soon"),
    ("http_auth_type", '"Foo"', "Foo"),
    ("log_format", '"xml"', "xml"),
    ("dev_mode", '"sure"', "sure"),
    ("tenant_config.gc_period", '"often"', "often"),
    ("virtual_file_io_engine", '"floppy"', "floppy"),
]


def _bad_config_text(key: str, value: str) -> str:
    if "." in key:
        table, leaf = key.split(".", 1)
        return f"[{table}]\n{leaf} = {value}\n"
    return f"{key} = {value}\n"


def _assert_clean_config_error(result, key: str, shown: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Error:" in result.stderr, output
    leaf = key.split(".")[-1]
    assert leaf in result.stderr, f"key {key} not named:\n{output}"
    assert shown in result.stderr, f"value {shown} not shown:\n{output}"
    assert "expected" in result.stderr.lower(), f"no hint of the expected value:\n{output}"
    assert "panicked" not in output.lower(), output
    assert "backtrace" not in output.lower(), output


@pytest.mark.parametrize("key, value, shown", BAD_VALUES, ids=[k for k, _, _ in BAD_VALUES])
def test_bad_value_in_file(pageserver_factory, key, value, shown) -> None:
    if key == "listen_http_addr":
        # Replace the harness's own address rather than adding a duplicate key.
        ps = pageserver_factory(config_file=False)
        ps.extra_args = []
        ps.config_path.write_text(f'listen_pg_addr = "{ps.pg_addr}"\n' + _bad_config_text(key, value))
    else:
        ps = pageserver_factory(_bad_config_text(key, value))
    _assert_clean_config_error(ps.run_cli(timeout=15), key, shown)


@pytest.mark.parametrize("key, value, shown", BAD_VALUES, ids=[k for k, _, _ in BAD_VALUES])
def test_bad_value_in_override(pageserver_factory, key, value, shown) -> None:
    ps = pageserver_factory()
    _assert_clean_config_error(ps.run_cli(["-c", f"{key}={value}"], timeout=15), key, shown)


def test_invalid_toml_fails_cleanly(pageserver_factory) -> None:
    ps = pageserver_factory("this is = = not toml\n")
    result = ps.run_cli(timeout=15)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Error:" in result.stderr
    assert "panicked" not in output.lower()
    assert "backtrace" not in output.lower()


def test_not_yet_effective_key_is_reported(pageserver_factory) -> None:
    ps = pageserver_factory({"heatmap_upload_concurrency": 4, "page_cache_size": 100}).start()
    lines = ps.log_lines()
    reported = _lines_with(lines, "not yet effective", "heatmap_upload_concurrency")
    assert len(reported) == 1, "\n".join(lines)
    assert "INFO" in reported[0]
    assert not _lines_with(lines, "unknown configuration key")
    # page_cache_size sizes the block cache now.
    assert not _lines_with(lines, "not yet effective", "page_cache_size"), "\n".join(lines)


def test_unset_keys_are_not_reported(pageserver_factory) -> None:
    ps = pageserver_factory().start()
    lines = ps.log_lines()
    assert not _lines_with(lines, "not yet effective", "page_cache_size"), "\n".join(lines)
    assert not _lines_with(lines, "unknown configuration key"), "\n".join(lines)


def test_json_log_format(pageserver_factory) -> None:
    ps = pageserver_factory({"log_format": "json", "frobnicate_level": 2}).start()
    ps.http.tenant_create()
    assert ps.stop() == 0

    lines = [line for line in ps.log_lines() if line.strip()]
    assert len(lines) >= 2, lines
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"log line is not JSON: {line!r}")
        assert isinstance(record, dict), line
        for field in ("timestamp", "level", "fields", "target"):
            assert field in record, f"{field} missing in {line}"
        assert "message" in record["fields"], line
        records.append(record)
    warnings = [
        r for r in records if r["level"] == "WARN" and "frobnicate_level" in str(r["fields"]["message"])
    ]
    assert len(warnings) == 1, lines


@pytest.mark.parametrize("engine", ["std-fs", "io-uring"])
def test_io_engine_in_effect_is_logged(pageserver_factory, engine) -> None:
    ps = pageserver_factory({"virtual_file_io_engine": engine, "virtual_file_io_mode": "direct"}).start()
    lines = ps.log_lines()
    in_effect = _lines_with(lines, "io engine in effect")
    assert len(in_effect) == 1, "\n".join(lines)
    if engine == "std-fs":
        assert "std-fs" in in_effect[0]
    else:
        # Either io-uring is in effect or the fallback is explained.
        assert "io-uring" in in_effect[0] or _lines_with(lines, "not available, using std-fs"), "\n".join(lines)
    assert "io mode: direct" in in_effect[0]
    assert not _lines_with(lines, "not yet effective", "virtual_file_io_engine")



def test_default_io_engine_is_io_uring(pageserver) -> None:
    lines = pageserver.log_lines()
    in_effect = _lines_with(lines, "io engine in effect")
    assert len(in_effect) == 1, "\n".join(lines)
    # io-uring unless the kernel refuses it, and then the reason is logged.
    assert "io-uring" in in_effect[0] or _lines_with(lines, "not available, using std-fs"), "\n".join(lines)
