"""proc/singleuser.py, the script every local and Slurm server starts through: it runs the real
jupyterhub-singleuser, without importing rfc3987_syntax (half the start-up CPU; see there)."""

from __future__ import annotations

import subprocess
import sys

from hubkeeper.context.runtime import SINGLEUSER

EXPENSIVE = "rfc3987_syntax.syntax_helpers"


def imported(command: list[str]) -> tuple[str, str]:
    """(stdout, the modules Python imported) of `command --version`."""
    done = subprocess.run([sys.executable, "-X", "importtime", *command, "--version"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def test_the_server_starts_without_the_expensive_import() -> None:
    import jupyterhub

    stock_out, stock_imports = imported(["-m", "jupyterhub.singleuser"])
    ours_out, our_imports = imported(["-P", SINGLEUSER])
    assert jupyterhub.__version__ in ours_out and ours_out == stock_out
    assert "jupyter_server.serverapp" in our_imports  # the real server, not a stand-in
    assert EXPENSIVE in stock_imports  # installed here, so the stock start pays for it
    assert EXPENSIVE not in our_imports
