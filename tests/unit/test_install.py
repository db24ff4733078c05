"""host/install.py on real folders (the venvs themselves are built in
tests/component/test_install.py), the unit of a versioned install, and the wheel's contents."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.config import parse
from hubkeeper.host import install
from hubkeeper.host.install import (
    CURRENT,
    MANIFEST,
    MARKER,
    InstallError,
    activate,
    current,
    install_of,
    installs,
    link_command,
    remove,
)
from hubkeeper.ops.unit import hubkeeper_executable
from hubkeeper.render.systemd import render_unit
from tests.support.wheel import ROOT, SYSTEM_PYTHON, build_wheel, wheel_files

SRC = ROOT / "src"
COURSE = """
hub: {name: course, ip: 127.0.0.1, port: 8000}
auth: {kind: pam}
users: {admins: [prof], allowed: [ann]}
"""


def complete(prefix: Path, name: str, built: str = "2026-01-01T00:00:00+00:00") -> Path:
    """What `build` leaves: the venv's bin/ (python, hubkeeper) and the manifest."""
    path = prefix / name
    (path / "bin").mkdir(parents=True)
    os.symlink(SYSTEM_PYTHON, path / "bin" / "python")
    script = path / "bin" / "hubkeeper"
    script.write_text(f"#!{path}/bin/python\n")
    script.chmod(0o755)
    (path / MANIFEST).write_text(json.dumps({"name": name, "built": built,
                                             "versions": {"hubkeeper": name}}))
    return path


def test_names_that_are_not_one_plain_folder_are_refused(tmp_path: Path) -> None:
    for name in ("current", "../x", "a/b", ".hidden", "", "-x", "x" * 101):
        with pytest.raises(InstallError, match="cannot name an install"):
            install.build(tmp_path, name, ["hubkeeper"])
    assert list(tmp_path.iterdir()) == []


def test_the_error_is_hubkeepers_so_verbs_need_no_translation() -> None:
    assert issubclass(InstallError, HubkeeperError)


def test_activate_swaps_current_and_names_the_previous(tmp_path: Path) -> None:
    complete(tmp_path, "0.1.0", "2026-01-01T00:00:00+00:00")
    complete(tmp_path, "0.2.0", "2026-02-01T00:00:00+00:00")
    assert current(tmp_path) is None
    os.symlink("0.2.0", tmp_path / ".current.999999")  # an activate killed before its rename
    assert activate(tmp_path, "0.1.0") is None
    assert activate(tmp_path, "0.2.0") == "0.1.0"
    assert os.readlink(tmp_path / CURRENT) == "0.2.0"  # relative: names the install
    assert current(tmp_path).name == "0.2.0"
    assert [i.name for i in installs(tmp_path)] == ["0.1.0", "0.2.0"]  # oldest first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".current")] == []


def test_an_incomplete_install_is_never_activated_nor_listed(tmp_path: Path) -> None:
    complete(tmp_path, "0.1.0")
    activate(tmp_path, "0.1.0")
    (complete(tmp_path, "0.2.0") / MARKER).write_text("")
    (tmp_path / "0.3.0").mkdir()  # killed between mkdir and the marker
    for name in ("0.2.0", "0.3.0"):
        with pytest.raises(InstallError, match="incomplete install"):
            activate(tmp_path, name)
    with pytest.raises(InstallError, match="no install '0.4.0'.*"):
        activate(tmp_path, "0.4.0")
    assert os.readlink(tmp_path / CURRENT) == "0.1.0"
    assert [i.name for i in installs(tmp_path)] == ["0.1.0"]
    assert [p.name for p in install.incomplete(tmp_path)] == ["0.2.0"]


def test_build_refuses_a_complete_install_and_a_foreign_folder(tmp_path: Path) -> None:
    complete(tmp_path, "0.1.0")
    with pytest.raises(InstallError, match="already a complete install"):
        install.build(tmp_path, "0.1.0", ["hubkeeper"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the operator's")
    with pytest.raises(InstallError, match="is not a hubkeeper install"):
        install.build(tmp_path, "mine", ["hubkeeper"])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "the operator's"
    assert (tmp_path / "0.1.0" / MANIFEST).is_file()


def test_remove_refuses_the_current_install_and_removes_others(tmp_path: Path) -> None:
    complete(tmp_path, "0.1.0")
    complete(tmp_path, "0.2.0")
    (complete(tmp_path, "0.3.0") / MARKER).write_text("")
    activate(tmp_path, "0.2.0")
    with pytest.raises(InstallError, match="is the current install"):
        remove(tmp_path, "0.2.0")
    remove(tmp_path, "0.1.0")
    remove(tmp_path, "0.3.0")  # an incomplete one too
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "0.2.0", CURRENT]
    (tmp_path / "other").mkdir()
    with pytest.raises(InstallError, match="not a hubkeeper install"):
        remove(tmp_path, "other")
    assert (tmp_path / "other").is_dir()


def test_the_command_link_points_at_current_and_leaves_foreign_files(tmp_path: Path) -> None:
    prefix, bin_dir = tmp_path / "opt", tmp_path / "bin"
    link = bin_dir / "hubkeeper"
    with pytest.raises(InstallError, match="current/bin/hubkeeper does not exist"):
        link_command(prefix, link)
    complete(prefix, "0.1.0")
    activate(prefix, "0.1.0")
    link_command(prefix, link)
    link_command(prefix, link)  # again: nothing changes
    assert os.readlink(link) == str(prefix / CURRENT / "bin" / "hubkeeper")
    link.unlink()
    link.write_text("#!/bin/sh\n")  # say, a `pip install hubkeeper` into /usr/local
    with pytest.raises(InstallError, match="is not hubkeeper's link"):
        link_command(prefix, link)
    assert link.read_text() == "#!/bin/sh\n"
    link_command(prefix, link, replace=True)
    assert link.is_symlink()


def test_the_prefix_and_its_lock_are_closed_to_writes_by_others(tmp_path: Path) -> None:
    prefix = tmp_path / "opt"
    old = os.umask(0o077)  # root's umask on a hardened server
    try:
        complete(prefix, "0.1.0")
        activate(prefix, "0.1.0")
    finally:
        os.umask(old)
    assert oct(prefix.stat().st_mode & 0o777) == "0o755"
    assert oct((prefix / ".lock").stat().st_mode & 0o777) == "0o600"


def test_the_unit_of_a_versioned_install_names_current(tmp_path: Path) -> None:
    venv = complete(tmp_path / "opt", "0.2.0")
    activate(tmp_path / "opt", "0.2.0")
    assert install_of(venv / "bin" / "hubkeeper")[1].name == "0.2.0"
    executable = hubkeeper_executable(venv / "bin" / "python")
    assert executable == tmp_path / "opt" / CURRENT / "bin" / "hubkeeper"
    config = tmp_path / "hub.yaml"
    unit = render_unit(parse(COURSE), config, executable)
    current_bin = tmp_path / "opt" / CURRENT / "bin"
    assert f"\nExecStart={current_bin}/hubkeeper up -c {config}\n" in unit
    assert f"\nEnvironment=PATH={current_bin}:/usr/local/sbin:" in unit
    assert "0.2.0" not in unit


def test_the_unit_of_any_other_venv_names_it_as_it_is(tmp_path: Path) -> None:
    """A clone's .venv (./run setup), or a venv pip installed into: no manifest."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "hubkeeper").write_text("#!/bin/sh\n")
    (venv / "bin" / "hubkeeper").chmod(0o755)
    assert install_of(venv / "bin" / "hubkeeper") is None
    assert hubkeeper_executable(venv / "bin" / "python") == venv / "bin" / "hubkeeper"
    building = complete(tmp_path / "opt", "0.3.0")
    (building / MARKER).write_text("")
    assert install_of(building / "bin" / "hubkeeper") is None


def test_install_py_runs_by_path_with_the_standard_library_alone(tmp_path: Path) -> None:
    """./run setup runs it with Debian's python3 before any venv exists: -S leaves out every
    site-packages, -I the environment."""
    complete(tmp_path, "0.1.0")
    script = SRC / "hubkeeper" / "host" / "install.py"
    for argv in ([SYSTEM_PYTHON, "-I", "-S", str(script)],
                 [SYSTEM_PYTHON, "-S", str(script)]):
        done = subprocess.run([*argv, "activate", "--prefix", str(tmp_path), "--name", "0.1.0"],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    imported = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(SRC)!r}); "
         "import hubkeeper.host.install; "
         "print(sorted(m for m in sys.modules if m.startswith('hubkeeper')))"],
        capture_output=True, text=True, check=True)
    assert eval(imported.stdout) == [  # noqa: S307 - our own list of module names
        "hubkeeper", "hubkeeper.base", "hubkeeper.base.errors", "hubkeeper.base.exits",
        "hubkeeper.base.files", "hubkeeper.host", "hubkeeper.host.install"]
    refused = subprocess.run([SYSTEM_PYTHON, "-I", "-S", str(script), "activate", "--prefix",
                              str(tmp_path), "--name", "current"], capture_output=True,
                             text=True)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: 'current' cannot name an install\nhint: ")


def test_the_wheel_carries_every_file_of_the_package(tmp_path: Path) -> None:
    """Every file under src/ that hubkeeper runs, imports or reads by path (templates, the
    server scripts, jupyterhub_config.py) is in `pip wheel .`, and nothing else is."""
    wheel = build_wheel(tmp_path)
    version = wheel.name.split("-")[1]
    tree = {str(path.relative_to(SRC)) for path in SRC.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}
    shipped = wheel_files(wheel)
    metadata = {name for name in shipped if name.startswith(f"hubkeeper-{version}.dist-info/")}
    assert shipped - metadata == tree
    assert {name.rsplit("/", 1)[1] for name in metadata} == {
        "METADATA", "WHEEL", "entry_points.txt", "RECORD"}
    assert "hubkeeper/hub/templates/hubkeeper-signup.html" in tree
