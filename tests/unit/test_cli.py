"""The CLI boundary: exit codes, messages with hints, no traceback unless --debug."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hubkeeper import __version__

HUBKEEPER = str(Path(sys.executable).parent / "hubkeeper")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_init_then_check_and_render(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).returncode == 0
    config = tmp_path / "hub.yaml"
    (tmp_path / "personal.yaml").write_text(
        config.read_text().replace("# mode: auto ", "mode: personal"))
    personal = str(tmp_path / "personal.yaml")
    checked = run("check", "--config", personal, "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["mode"] == "personal"
    rendered = run("--config", personal, "render", "--json")
    assert rendered.returncode == 0, rendered.stderr
    body = json.loads(rendered.stdout)["jupyterhub"]
    assert body["ConfigurableHTTPProxy"]["auth_token"] == "<redacted>"
    assert body["SharedPasswordAuthenticator"]["user_password"] == "<redacted>"
    text = run("--config", personal, "render").stdout
    assert "c.JupyterHub.bind_url = 'http://127.0.0.1:8000/'" in text
    assert not (tmp_path / ".hubkeeper").exists(), "render must not create the state dir"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "hub.yaml").write_text("mine\n")
    result = run("init", str(tmp_path))
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert (tmp_path / "hub.yaml").read_text() == "mine\n"


def test_bad_config_exits_2_with_positions_and_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("hub:\n  prot: 8000\n  state_dir: state\nusers: {allowed: [a]}\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    for verb in ("check", "render", "up", "status"):
        result = run("--config", str(config), verb)
        assert result.returncode == 2, (verb, result.stderr)
        assert f"{config}:2:3: hub.prot: unknown key 'prot'; did you mean 'port'?" \
            in result.stderr
        assert "Traceback" not in result.stderr
        assert "hint:" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "--config", str(tmp_path / "missing.yaml"), "check")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert "no such file" in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    result = run("up", "--frobnicate")
    assert result.returncode == 2
    assert "No such option" in result.stderr


def test_status_of_a_hub_that_is_not_running(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("hub: {port: 1, api_port: 2, state_dir: state, mode: personal}\n"
                      "users: {allowed: [a]}\n")
    (tmp_path / "state" / "secrets").mkdir(parents=True)
    (tmp_path / "state" / "secrets" / "status-token").write_text("x")
    result = run("--config", str(config), "status", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["reachable"] is False


def refused(tmp_path: Path, text: str, verb: str) -> str:
    """`verb` on hub.yaml `text` (its state dir ./state) is bad input and changes nothing:
    its stderr, where the file is named <hub.yaml>."""
    config = tmp_path / "hub.yaml"
    config.write_text("hub: {mode: personal, state_dir: state}\n" + text)
    result = run("--config", str(config), verb)
    assert result.returncode == 2, result.stdout + result.stderr
    assert not (tmp_path / "state").exists()
    return result.stderr.replace(str(config), "<hub.yaml>")


def test_limits_and_services_name_roster_groups(tmp_path: Path) -> None:
    """A misspelt group would silently give its members the hub-wide limits."""
    stderr = refused(tmp_path, "users:\n  allowed: [a, b]\n  groups: {tas: [a]}\n"
                     "limits:\n  memory: 1G\n  groups: {taz: {memory: 2G}}\n", "check")
    assert ("<hub.yaml>:7:17: limits.groups.taz: 'taz' is not a roster group (roster "
            "groups: tas)") in stderr


def test_the_starters_commented_sections_load_when_uncommented(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).returncode == 0
    config = tmp_path / "hub.yaml"
    text = config.read_text()
    head, _, commented = text.partition("# servers:")
    body = "\n".join(line[2:] if line.startswith("# ") and not line.startswith("# What")
                     and not line.startswith("# Course") else line
                     for line in ("# servers:" + commented).splitlines())
    config.write_text(head + body + "\n")
    result = run("-c", str(config), "render")
    assert result.returncode == 0, result.stderr
    assert "NLTK_DATA" in result.stdout and "course" in result.stdout
