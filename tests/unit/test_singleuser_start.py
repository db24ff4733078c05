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


def test_a_hidden_kernel_folder_is_not_listed(tmp_path) -> None:
    """HUBKEEPER_HIDDEN_KERNELS (servers of environments: Debian's kernelspecs): the server's
    KernelSpecManager skips that folder and no other."""
    import json

    for folder, name in (("debian", "hidden-one"), ("build", "mine")):
        spec = tmp_path / folder / "kernels" / name
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps(
            {"argv": ["true", "{connection_file}"], "display_name": name, "language": "x"}))
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('su', {SINGLEUSER!r})\n"
        "su = importlib.util.module_from_spec(spec); spec.loader.exec_module(su)\n"
        f"su.hide_kernel_folder({str(tmp_path / 'debian' / 'kernels')!r} + '/')\n"
        "from traitlets.utils.importstring import import_item\n"
        "name = sys.argv[-1].split('=', 1)[1]\n"
        "print(sorted(import_item(name)().find_kernel_specs()))\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "JUPYTER_PATH": f"{tmp_path / 'debian'}:{tmp_path / 'build'}"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = eval(done.stdout.strip())  # noqa: S307 - our own probe's list
    assert "hidden-one" not in listed and "mine" in listed
