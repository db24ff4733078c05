"""The escape hatch (hub.extra_config, environments.<name>.server_config): `check` locates a
syntax error in the file itself and refuses files others could change, `render` shows them,
`doctor` names the settings of hubkeeper's they override, the hub runs them into its own
Config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from traitlets.config import Config

from hubkeeper.config import load
from hubkeeper.context.hub import Hub
from hubkeeper.doctor import CHECKS
from hubkeeper.host.extra_config import file_problems, run_into, settings_of
from hubkeeper.hub.launch import run_extra_config
from hubkeeper.verbs.doctor import doctor
from hubkeeper.verbs.render import render_config

HUBKEEPER = str(Path(sys.executable).parent / "hubkeeper")

HUB_FILE = """\
c.Spawner.default_url = "/tree"
c.JupyterHub.shutdown_on_logout = True
"""
SERVER_FILE = 'c.ContentsManager.hide_globs = ["*.hidden"]\n'


def hub_yaml(tmp_path: Path, extra: str = "extra.py", server: str = "server.py") -> Path:
    config = tmp_path / "hub.yaml"
    config.write_text(
        "version: 1\n"
        "hub:\n  name: unit\n  mode: personal\n  state_dir: state\n"
        f"  extra_config: [{extra}]\n"
        "users:\n  allowed: [ann]\n"
        f"environments:\n  py:\n    server_config: [{server}]\n")
    for name, body in ((extra, HUB_FILE), (server, SERVER_FILE)):
        path = tmp_path / name
        if not path.exists():
            path.write_text(body)
            os.chmod(path, 0o644)
    return config


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, *args], capture_output=True, text=True, timeout=60)


def test_check_reports_a_syntax_error_at_the_files_own_line_and_column(tmp_path: Path) -> None:
    config = hub_yaml(tmp_path)
    (tmp_path / "extra.py").write_text('c.Spawner.default_url = "/tree"\nx = (\n')
    (tmp_path / "server.py").write_text("c.ServerApp.x = 1\nif True\n    pass\n")
    before = sorted(path.name for path in tmp_path.iterdir())
    checked = run("--config", str(config), "check")
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "nothing was changed" in checked.stderr
    assert f"{tmp_path}/extra.py:2:5: syntax error: '(' was never closed" in checked.stderr
    assert f"{tmp_path}/server.py:2:8: syntax error: expected ':'" in checked.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # no state dir made


def test_check_names_hub_yamls_line_for_a_missing_or_unsafe_file(tmp_path: Path) -> None:
    config = hub_yaml(tmp_path, extra="gone.py")
    (tmp_path / "gone.py").unlink()
    os.chmod(tmp_path / "server.py", 0o664)
    problems = [str(problem) for problem in file_problems(load(config), "personal")]
    assert problems == [
        f"{config}:6:18: hub.extra_config[0]: no such file: {tmp_path}/gone.py",
        f"{config}:11:21: environments.py.server_config[0]: {tmp_path}/server.py is writable "
        f"by other users; chmod go-w {tmp_path}/server.py: the file runs in every server of "
        "environment 'py'",
    ]


def test_servers_files_must_be_readable_by_every_account_in_system_mode(tmp_path: Path) -> None:
    config = hub_yaml(tmp_path)
    os.chmod(tmp_path / "server.py", 0o600)
    assert file_problems(load(config), "personal") == []
    [problem] = file_problems(load(config), "system")
    # (pytest's own folders are 0700: the first thing named is the folder others cannot enter)
    assert str(problem).startswith(
        f"{config}:11:21: environments.py.server_config[0]: server_config files are read by "
        "each user's server, but other accounts cannot ")


def test_render_shows_each_file_after_the_configuration(tmp_path: Path) -> None:
    config = hub_yaml(tmp_path)
    result = render_config(Hub.open(config))
    assert [(extra.path, extra.runs, extra.text) for extra in result.extra_config] == [
        (str(tmp_path / "extra.py"), "hub", HUB_FILE),
        (str(tmp_path / "server.py"), "server:py", SERVER_FILE)]
    environments = result.jupyterhub["HubkeeperSpawner"]["environments"]
    assert environments["py"]["server_config"] == [str(tmp_path / "server.py")]
    shown = run("--config", str(config), "render").stdout
    rendered, hub_part = shown.split(f"# --- {tmp_path}/extra.py (hub.extra_config")
    assert "c.Spawner.default_url = '/lab'" in rendered
    assert hub_part.index('c.Spawner.default_url = "/tree"') < hub_part.index(
        f"# --- {tmp_path}/server.py (server_config of environment 'py'")


def test_the_hub_runs_its_files_into_its_own_config_last(tmp_path: Path) -> None:
    config = hub_yaml(tmp_path)
    c = Config()
    c.Spawner.default_url = "/lab"
    run_extra_config(c, lambda: c, Hub.open(config))
    assert c.Spawner.default_url == "/tree" and c.JupyterHub.shutdown_on_logout is True
    assert settings_of(run_into(Config(), tmp_path / "server.py", SERVER_FILE)) == {
        "ContentsManager.hide_globs"}


def test_doctor_lists_what_the_files_override(tmp_path: Path) -> None:
    config = hub_yaml(tmp_path)
    (tmp_path / "server.py").write_text(
        SERVER_FILE + "c.ResourceUseDisplay.track_cpu_percent = False\n")
    checks = [check for check in CHECKS if check.name == "extra_config"]
    result = doctor(Hub.open(config), fix=False, checks=checks)
    found = [(finding.status, finding.explanation) for finding in result.findings]
    assert found == [
        ("warning", "extra_config extra.py overrides Spawner.default_url set by hubkeeper. "
                    "That is the operator's own choice; hubkeeper's value no longer applies."),
        ("warning", "server_config of environment 'py' server.py overrides "
                    "ResourceUseDisplay.track_cpu_percent set by hubkeeper's server settings. "
                    "That is the operator's own choice; hubkeeper's value no longer applies."),
    ]
    (tmp_path / "extra.py").write_text("raise RuntimeError('boom')\n")
    [hub_file, _] = doctor(Hub.open(config), fix=False, checks=checks).findings
    assert hub_file.status == "problem"
    assert "fails when run: RuntimeError: boom" in hub_file.explanation
