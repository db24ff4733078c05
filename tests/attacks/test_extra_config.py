"""A student attacks hub.extra_config, which the hub runs as root: the operator named a file
in a folder the student owns (a course repository checked out in their home, say). The
student rewrites it to run their code as root; `check` refuses the file, and so does the
hub when it loads it (the file may have been swapped after `check`): nothing of it runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from traitlets.config import Config

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.config import load
from hubkeeper.context.hub import Hub
from hubkeeper.host.extra_config import file_problems
from hubkeeper.hub.launch import run_extra_config

pytestmark = [pytest.mark.attack, pytest.mark.root]

EVIL = "open({marker!r}, 'w').write('ran as root')\n"


def test_an_extra_config_file_a_student_can_change_never_runs(workdir: Path,
                                                              students) -> None:
    mallory = students.make("xcfg")
    folder = workdir / "course"
    folder.mkdir(mode=0o755)
    hub_file = folder / "hub_extra.py"
    hub_file.write_text("c.JupyterHub.shutdown_on_logout = True\n")
    os.chmod(hub_file, 0o644)
    config = workdir / "hub.yaml"
    config.write_text("version: 1\nhub:\n  name: hke\n  mode: personal\n  state_dir: state\n"
                      f"  extra_config: [{hub_file}]\nusers:\n  allowed: [ann]\n")
    assert file_problems(load(config), "personal") == []  # root's own folder: fine

    os.chown(folder, mallory.uid, -1)  # the student's folder now
    marker = workdir / "pwned"
    mallory.python(f"""
        import os
        path = {str(hub_file)!r}
        os.rename(path, path + ".old")
        open(path, "w").write({EVIL.format(marker=str(marker))!r})
    """)
    [problem] = file_problems(load(config), "personal")
    assert str(problem) == (
        f"{config}:6:18: hub.extra_config[0]: {hub_file} belongs to uid {mallory.uid}, who "
        f"could change it: the file runs in the hub as root")

    with pytest.raises(HubkeeperError) as refused:
        run_extra_config(Config(), Config, Hub.open(config))
    assert f"hub.extra_config {hub_file} is not run" in refused.value.message
    assert not marker.exists()
