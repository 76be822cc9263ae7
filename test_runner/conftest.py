"""Root conftest: registers the harness modules in ``fixtures/`` as plugins."""

pytest_plugins = [
    "fixtures.options",
    "fixtures.binary",
    "fixtures.ports",
    "fixtures.auth",
    "fixtures.pageserver",
    "fixtures.postgres",
]
