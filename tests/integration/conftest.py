"""Fixtures shared by the tests that run a private nginx (test_nginx, test_browser_tls)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX, _failed, require, require_root
from tests.support.nginxsite import private_nginx


@pytest.fixture
def place(request: pytest.FixtureRequest):
    """A temporary directory named with the test prefix, that nginx's workers can read."""
    path = Path(tempfile.mkdtemp(prefix=f"{TEST_ACCOUNT_PREFIX}-nginx-"))
    path.chmod(0o755)
    yield path
    if _failed(request):
        print(f"\nkept for diagnosis: {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def nginx(place: Path, request: pytest.FixtureRequest):
    """An nginx main configuration of our own; the nginx that apply starts is stopped after."""
    require_root()
    require(shutil.which("nginx", path=os.environ["PATH"] + ":/usr/sbin") is not None,
            "nginx is not installed (./run installs it)")
    server = private_nginx(place)
    yield server
    if _failed(request) and (place / "error.log").exists():
        print(f"\n===== nginx error.log\n{(place / 'error.log').read_text()[-5000:]}")
    server.stop()
