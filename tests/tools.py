"""Outside programs some tests need (Syncthing, Caddy, systemd-analyze): skipped
on a developer machine without them, a failure in CI (CI=true), where a skip
would hide that nothing was tested."""

import os
import shutil

import pytest


def unavailable(message: str) -> None:
    """Skip the test, or fail it in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str, package: str) -> str:
    """The path of ``name``, or skip (fail in CI) naming the Debian package that has it."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"needs {name} (Debian: apt-get install {package})")
    return path
