"""Environments (environments:), as root with real Linux accounts: `hubkeeper env build`,
the spawn form, a forged API start, kernels from the chosen build, the per-environment
folder and `env rebuild` under a running server; an R environment's kernel (Debian's R and
IRkernel, a Debian r-cran package, one from a CRAN-like repository on disk) only for its
group's servers."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import pwd
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import HUBKEEPER, journaled, write_config
from tests.support.simuser import SimUser

pytestmark = [pytest.mark.component, pytest.mark.root]

PASSWORD = "Correct-Horse-7"
LAB = f"{P}lab"
# tabulate and toolz are tiny pure-Python packages that hubkeeper's venv does not have.
# Variables: hub-wide < the environment's < the group's; fun opens the notebook interface.
# fun is also an R environment: jsonlite from Debian (r-cran-jsonlite), hkdemo from a
# CRAN-like repository the test writes (cran/, see cran_repository below).
# Warm kernels: Python kernels are forks of a parent the server starts with the environment's
# python (which cannot import hubkeeper); IRkernel starts the normal way.
ENVIRONMENTS = (
    "environments:\n"
    "  tables: {packages: [tabulate], default: true, env: {HK_LEVEL: tables},\n"
    "           server_config: [extra/server.py]}\n"
    "  fun: {packages: [toolz], groups: [" + LAB + "], home_template: tpl, ui: notebook,\n"
    "        env: {HK_LEVEL: fun, HK_GROUP: fun},\n"
    "        r: {packages: [jsonlite], cran: [hkdemo], cran_repository: 'file://CRAN'}}\n"
    "servers:\n"
    "  warm_kernels: true\n"
    "  env: {NLTK_DATA: /srv/nltk_data, HK_LEVEL: hub, HK_GROUP: hub}\n"
    "  groups: {" + LAB + ": {env: {HK_GROUP: lab}}}\n"
    "hooks:\n"
    "  as_root: [{script: hooks/env.sh}]\n")
PROBE = ("import os, sys\nr = {'prefix': sys.prefix, 'cwd': os.getcwd(), "
         "'server_cwd': os.readlink(f'/proc/{os.getppid()}/cwd'), "
         "'env': [os.environ.get(n) for n in ('NLTK_DATA', 'HK_LEVEL', 'HK_GROUP')], "
         "'extra': os.environ.get('HK_EXTRA'), 'uid': os.getuid(), "
         "'parent': [os.stat(f'/proc/{os.getppid()}').st_uid, "
         "os.path.basename(open(f'/proc/{os.getppid()}/cmdline').read().split(chr(0))[2])]}\n"
         "for m in ('tabulate', 'toolz'):\n"
         "    try:\n        __import__(m); r[m] = True\n"
         "    except ImportError:\n        r[m] = False\n"
         "import json; json.dumps(r)")


R_PROBE = 'library(jsonlite); library(hkdemo); paste(hello(), toJSON(1 + 1), .libPaths()[1])'


def cran_repository(where: Path) -> Path:
    """A CRAN-like repository on disk holding one tiny package, hkdemo (R CMD build,
    tools::write_PACKAGES): what install.packages reads from CRAN, without the network."""
    package = where / "src-hkdemo"
    (package / "R").mkdir(parents=True)
    (package / "DESCRIPTION").write_text(
        "Package: hkdemo\nVersion: 0.1.0\nTitle: A Package for Tests\nDescription: Says "
        "hello.\nLicense: MIT\nAuthor: Nobody\nMaintainer: Nobody <nobody@example.org>\n")
    (package / "NAMESPACE").write_text("export(hello)\n")
    (package / "R" / "hello.R").write_text('hello <- function() "hello from cran"\n')
    contrib = where / "cran" / "src" / "contrib"
    contrib.mkdir(parents=True)
    subprocess.run(["R", "CMD", "build", "--no-manual", "--no-build-vignettes", str(package)],
                   cwd=contrib, check=True, capture_output=True, timeout=120)
    subprocess.run(["Rscript", "-e", 'tools::write_PACKAGES(".", type = "source")'],
                   cwd=contrib, check=True, capture_output=True, timeout=120)
    return where / "cran"


def hubkeeper(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # pip's cache stays in the test's workdir
    env = {**os.environ, "PIP_CACHE_DIR": str(config.parent / "pip-cache")}
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, env=env, timeout=600)


async def start(user: SimUser, body: dict) -> tuple[int, str]:
    url = user.base + f"hub/api/users/{user.name}/server"
    async with user.session.post(url, json=body, headers=user._hub_headers()) as response:
        return response.status, await response.text()


async def spawn_page(url: str, name: str) -> str:
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        async with user.session.get(user.base + f"hub/spawn/{name}") as response:
            return await response.text()


async def forged(url: str, name: str, environment: str) -> tuple[int, str]:
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        status, text = await start(user, {"environment": environment})
        if status in (201, 202):
            try:
                await user.wait_ready(30)
            except Exception as exc:  # the refusal comes after the request was accepted
                return status, str(exc) + " " + json.dumps(await user.model())
        return status, text


async def landing(user: SimUser) -> tuple[str, str]:
    """Where /user/<name>/ lands after its redirects (the server's default URL), and the
    page there."""
    async with user.session.get(user.base + f"user/{user.name}/") as response:
        assert response.status == 200, response.status
        return response.url.path, await response.text()


async def session(url: str, name: str, environment: str | None, code: list[str],
                  stop: bool = True, gets: tuple[str, ...] = ()) -> list:
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        status, text = await start(user, {"environment": environment} if environment else {})
        assert status in (201, 202), text
        await user.wait_ready(120)
        await user.open_server()
        path, page = await landing(user)
        results: list = [path, page] + [await user.run_code(each) for each in code]
        results += [await user.server_get(endpoint) for endpoint in gets]
        if stop:
            await user.stop_server()
        return results


async def in_running(url: str, name: str, code: str, kernel: str = "python3") -> str:
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        await user.open_server()
        return await user.run_code(code, kernel_name=kernel)


async def kernelspecs(url: str, name: str, stop: bool) -> dict:
    """The kernelspecs the user's running server offers, by name."""
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        await user.open_server()
        specs = (await user.kernelspecs())["kernelspecs"]
        if stop:
            await user.stop_server()
        return specs


def result(text: str) -> dict:
    """PROBE's answer: the repr of a JSON string."""
    return json.loads(ast.literal_eval(text))


def test_environments_end_to_end(workdir: Path, hubs, accounts) -> None:
    ann = accounts(f"{P}1", password=PASSWORD)  # in LAB: tables and fun
    bo = accounts(f"{P}2", password=PASSWORD)  # tables only
    (workdir / "tpl" / "sub").mkdir(parents=True)
    (workdir / "tpl" / "notes.txt").write_text("from the template\n")
    (workdir / "tpl" / "sub" / "data.csv").write_text("a,b\n")
    os.chmod(workdir / "tpl", 0o755)
    os.chmod(workdir / "tpl" / "sub", 0o755)
    (workdir / "hooks").mkdir()
    out = workdir / "out"
    out.mkdir()
    (workdir / "hooks" / "env.sh").write_text(
        f"#!/bin/sh\necho \"$HUBKEEPER_USER $HUBKEEPER_ENVIRONMENT\" >> {out}/env\n")
    os.chmod(workdir / "hooks" / "env.sh", 0o755)
    # The escape hatch: hub settings hub.yaml does not model (a variable in every server, the
    # metrics open without a token) and a server setting of environment tables (files ending
    # .hidden are not listed).
    (workdir / "extra").mkdir(mode=0o755)
    (workdir / "extra" / "hub.py").write_text(
        'c.Spawner.environment = {"HK_EXTRA": "from extra_config"}\n'
        'c.JupyterHub.authenticate_prometheus = False\n')
    (workdir / "extra" / "server.py").write_text(
        'c.ContentsManager.hide_globs = ["__pycache__", "*.hidden"]\n')
    for snippet in ("hub.py", "server.py"):
        os.chmod(workdir / "extra" / snippet, 0o644)
    config = write_config(workdir, mode="system", auth="pam", admins=(), allowed=(ann, bo),
                          extra=ENVIRONMENTS, hub_extra="  extra_config: [extra/hub.py]\n")
    config.write_text(config.read_text().replace(
        "users:\n", f"users:\n  groups: {{{LAB}: [{ann}]}}\n").replace(
        "file://CRAN", f"file://{cran_repository(workdir)}"))

    built = hubkeeper(config, "env", "build")
    assert built.returncode == 0, built.stderr
    assert "Successfully installed" in built.stderr  # pip's progress lines
    listed = json.loads(hubkeeper(config, "env", "list", "--json").stdout)
    rows = {env["name"]: env for env in listed["environments"]}
    assert any(line.startswith("tabulate==") for line in rows["tables"]["locked"])
    assert any(line.startswith("toolz==") for line in rows["fun"]["locked"])
    assert "cran:hkdemo==0.1.0" in rows["fun"]["locked"]
    debian = {line.split("==")[0] for line in rows["fun"]["locked"]}
    assert {"r-base-core", "r-cran-irkernel", "r-cran-jsonlite"} <= debian
    assert not any(line.startswith("r-") for line in rows["tables"]["locked"])
    envs = workdir / "state" / "envs"
    first_fun = (envs / "fun" / "current").resolve()
    assert oct(first_fun.stat().st_mode & 0o777) == "0o755"

    hub = hubs.start(journaled(config, ann, bo))  # accounts made outside hubkeeper, adopted
    with urllib.request.urlopen(hub.url + "hub/metrics", timeout=30) as response:
        assert b"jupyterhub_" in response.read()  # JupyterHub's default asks for a token
    # The form lists only what the user may use; one allowed environment: no form.
    page = asyncio.run(spawn_page(hub.url, ann))
    assert 'value="tables"' in page and 'value="fun"' in page
    # A forged start with an environment bo may not use, or one that does not exist.
    status, text = asyncio.run(forged(hub.url, bo, "fun"))
    assert "you may not use the environment 'fun'" in text, (status, text)
    status, text = asyncio.run(forged(hub.url, bo, "nope"))
    assert "there is no environment 'nope'" in text, (status, text)

    # bo gets the default; ann chooses fun.
    files = "[open(name, 'w').close() for name in ('x.hidden', 'x.shown')]"
    bo_path, bo_page, bo_probe, _, bo_listing, bo_metrics = asyncio.run(session(
        hub.url, bo, None, [PROBE, files], stop=False,
        gets=("api/contents/", "api/metrics/v1")))
    bo_run = result(bo_probe)
    # Debian's r-cran-irkernel has an `ir` kernelspec in /usr/share/jupyter/kernels: a
    # server of an environment without R does not offer it.
    bo_kernels = asyncio.run(kernelspecs(hub.url, bo, stop=True))
    assert "ir" not in bo_kernels and "python3" in bo_kernels
    assert bo_run["tabulate"] and not bo_run["toolz"]
    assert bo_run["extra"] == "from extra_config"  # hub.extra_config reached the kernel
    listed = {item["name"] for item in bo_listing["content"]}
    assert "x.shown" in listed and "x.hidden" not in listed  # tables' server_config
    assert bo_metrics["rss"] > 0  # jupyter-resource-usage runs in an environment's server
    assert bo_run["prefix"] == str((envs / "tables" / "current").resolve())
    # tables opens JupyterLab (servers.ui's default); its variables over the hub-wide ones
    assert bo_path == f"/user/{bo}/lab" and "<title>JupyterLab</title>" in bo_page
    assert bo_run["env"] == ["/srv/nltk_data", "tables", "hub"]
    # the kernel is a fork of the server's warm parent, both running as bo
    assert bo_run["uid"] == pwd.getpwnam(bo).pw_uid
    assert bo_run["parent"] == [bo_run["uid"], "kernelfork_parent.py"]
    home = Path(pwd.getpwnam(ann).pw_dir)
    edit = f"open({str(home / 'fun' / 'notes.txt')!r}, 'w').write('mine\\n')"
    ann_path, ann_page, *ann_run = asyncio.run(session(hub.url, ann, "fun", [PROBE, edit]))
    probe = result(ann_run[0])
    assert probe["toolz"] and not probe["tabulate"]
    assert probe["extra"] == "from extra_config"
    # fun opens the notebook interface's file tree; the group's variable wins over fun's
    assert ann_path == f"/user/{ann}/tree", ann_path
    assert "<title>Home</title>" in ann_page and '"appName": "Jupyter Notebook"' in ann_page
    assert probe["env"] == ["/srv/nltk_data", "fun", "lab"]
    assert probe["prefix"] == str(first_fun)
    assert probe["cwd"] == probe["server_cwd"] == str(home / "fun")
    folder = home / "fun"
    assert folder.stat().st_uid == pwd.getpwnam(ann).pw_uid
    assert (folder / "sub" / "data.csv").read_text() == "a,b\n"
    assert (out / "env").read_text().splitlines() == [f"{bo} tables", f"{ann} fun"]

    # Second start: the user's edit stays, a new template file arrives.
    (workdir / "tpl" / "new.txt").write_text("new\n")
    asyncio.run(session(hub.url, ann, "fun", ["1"], stop=False))
    assert (folder / "notes.txt").read_text() == "mine\n"
    assert (folder / "new.txt").read_text() == "new\n"
    # fun's R: its build's kernelspec, R code over the websocket, both packages.
    ann_kernels = asyncio.run(kernelspecs(hub.url, ann, stop=False))
    assert ann_kernels["ir"]["spec"]["env"] == {"R_LIBS": f"{first_fun}/R/library"}
    assert asyncio.run(in_running(hub.url, ann, "1+1", kernel="ir")) == "[1] 2"
    assert asyncio.run(in_running(hub.url, ann, R_PROBE, kernel="ir")) == \
        f'[1] "hello from cran [2] {first_fun}/R/library"'

    # Rebuild under the running server: it keeps working on its build; new servers move.
    rebuilt = hubkeeper(config, "env", "rebuild", "fun")
    assert rebuilt.returncode == 0, rebuilt.stderr
    second_fun = (envs / "fun" / "current").resolve()
    assert second_fun != first_fun and first_fun.is_dir()
    still = result(asyncio.run(in_running(hub.url, ann, PROBE)))
    assert still["toolz"] and still["prefix"] == str(first_fun)

    async def restart() -> list[str]:
        async with SimUser(hub.url, ann, PASSWORD) as user:
            await user.login()
            await user.stop_server()
        return await session(hub.url, ann, "fun", [PROBE])

    fresh = result(asyncio.run(restart())[2])
    assert fresh["toolz"] and fresh["prefix"] == str(second_fun)


def test_a_failed_build_keeps_current_and_shows_pips_error(workdir: Path) -> None:
    config = write_config(workdir, extra="environments:\n  fun: {packages: [toolz]}\n")
    assert hubkeeper(config, "env", "build", "-q").returncode == 0
    envs = workdir / "state" / "envs" / "fun"
    before = (envs / "current").resolve()
    assert "up to date" in hubkeeper(config, "env", "build", "-q").stdout
    # A path that does not exist: pip fails without asking any index.
    config.write_text(config.read_text().replace(
        "[toolz]", f"[toolz, {workdir}/no-such-package]"))
    failed = hubkeeper(config, "env", "build", "fun")
    assert failed.returncode == 1, failed.stderr
    assert "building environment 'fun' failed" in failed.stderr
    assert "no-such-package" in failed.stderr
    assert "the current build is unchanged" in failed.stderr
    assert (envs / "current").resolve() == before
    assert sorted(p.name for p in envs.iterdir()) == sorted([".lock", before.name, "current"])


def test_apply_builds_what_changed_and_then_nothing(workdir: Path) -> None:
    """The declarative path: `apply` builds a new or changed environment, and only then."""
    config = write_config(workdir, extra="environments:\n  fun: {packages: [toolz]}\n")
    planned = json.loads(hubkeeper(config, "plan", "--json").stdout)
    assert {"kind": "build-environment", "subject": "fun", "detail": ""} in planned["actions"]
    applied = hubkeeper(config, "apply")
    assert applied.returncode == 0, applied.stderr
    assert "build-environment fun" in applied.stdout
    current = workdir / "state" / "envs" / "fun" / "current"
    assert (current / "requirements.lock").read_text().count("toolz==") == 1
    again = json.loads(hubkeeper(config, "plan", "--json").stdout)
    assert not [a for a in again["actions"] if a["kind"] == "build-environment"]
    config.write_text(config.read_text().replace("[toolz]", "[toolz, tabulate]"))
    changed = hubkeeper(config, "apply")
    assert "build-environment fun" in changed.stdout, changed.stdout
    assert "tabulate==" in (current / "requirements.lock").read_text()


def test_rollback_pins_a_build_and_keep_never_removes_one_in_use(workdir: Path) -> None:
    """`env rollback` brings back the build before, `apply` leaves it until hub.yaml
    changes; builds beyond keep go, except one a process still runs from."""
    config = write_config(workdir, extra="environments:\n  fun: {packages: [toolz], keep: 2}\n")
    envs = workdir / "state" / "envs" / "fun"

    def current() -> str:
        return (envs / "current").resolve().name

    def builds() -> list[str]:
        return sorted(p.name for p in envs.iterdir()
                      if not p.is_symlink() and (p / "requirements.lock").is_file())

    assert hubkeeper(config, "env", "build", "-q").returncode == 0
    b1 = current()
    # A server of b1 (its argv names the resolved build, as the spawner starts it).
    server = subprocess.Popen([str(envs / b1 / "bin" / "python"), "-c",
                               "import time; time.sleep(600)"])
    try:
        assert hubkeeper(config, "env", "rebuild", "fun", "-q").returncode == 0
        b2 = current()
        third = hubkeeper(config, "env", "rebuild", "fun")
        assert third.returncode == 0, third.stderr
        b3 = current()
        assert len({b1, b2, b3}) == 3
        assert builds() == sorted([b1, b2, b3])  # b1 is beyond keep: 2, but in use
        assert f"kept {b1} beyond keep: running servers use them" in third.stderr
    finally:
        server.kill()
        server.wait()
    pruned = json.loads(hubkeeper(config, "env", "prune", "fun", "--json").stdout)
    assert pruned["removed"] == [b1] and pruned["in_use"] == []
    assert builds() == sorted([b2, b3])

    # Back to b2: pinned, so neither apply nor env build moves it.
    back = hubkeeper(config, "env", "rollback", "fun")
    assert back.returncode == 0, back.stderr
    assert f"new servers start from {b2} (was {b3})" in back.stdout
    assert current() == b2
    plan = json.loads(hubkeeper(config, "plan", "--json").stdout)
    assert not [a for a in plan["actions"] if a["kind"] == "build-environment"]
    assert "pinned by `env rollback`" in hubkeeper(config, "env", "build", "fun").stderr
    assert current() == b2
    listed = json.loads(hubkeeper(config, "env", "list", "--json").stdout)
    assert listed["environments"][0]["pinned"]
    # Nothing older than b2; a build that does not exist is bad input, nothing changes.
    older = hubkeeper(config, "env", "rollback", "fun")
    assert older.returncode == 1 and "no build is older than the current one" in older.stderr
    bad = hubkeeper(config, "env", "rollback", "fun", "--to", "nope")
    assert bad.returncode == 2, bad.stderr
    assert f"command line: --to: 'nope' is not a finished build of fun; valid: {b2}, {b3}" \
        in bad.stderr
    assert current() == b2
    # Forward again by name, then back; a change of hub.yaml's fun ends the pin.
    assert hubkeeper(config, "env", "rollback", "fun", "--to", b3).returncode == 0
    assert current() == b3
    assert hubkeeper(config, "env", "rollback", "fun", "--to", b2).returncode == 0
    config.write_text(config.read_text().replace("[toolz]", "[toolz, tabulate]"))
    applied = hubkeeper(config, "apply")
    assert "build-environment fun" in applied.stdout, applied.stdout + applied.stderr
    b4 = current()
    assert "tabulate==" in (envs / b4 / "requirements.lock").read_text()
    assert not (envs / "pinned.json").exists()
    assert builds() == sorted([b3, b4])  # b2 went: the newest other than current is b3


def test_an_r_environment_that_cannot_be_built_says_why(workdir: Path) -> None:
    """CRAN where the machine does not reach it, and a Debian package that does not exist:
    the build fails with the reason and leaves no current build."""
    config = write_config(workdir, extra="environments:\n  stats: {r: {cran: [hkdemo], "
                          "cran_repository: 'http://127.0.0.1:9'}}\n")
    failed = hubkeeper(config, "env", "build", "stats")
    assert failed.returncode == 1, failed.stderr
    assert ("building environment 'stats' failed: the CRAN repository cannot be reached "
            "(http://127.0.0.1:9)") in failed.stderr
    assert "list packages Debian has under environments.stats.r.packages" in failed.stderr
    envs = workdir / "state" / "envs" / "stats"
    assert not (envs / "current").exists()
    config.write_text(config.read_text().replace(
        "{cran: [hkdemo], cran_repository: 'http://127.0.0.1:9'}", "{packages: [nosuchpkg0]}"))
    failed = hubkeeper(config, "env", "build", "stats")
    assert failed.returncode == 1, failed.stderr
    assert ("building environment 'stats' failed: Debian has no package r-cran-nosuchpkg0"
            in failed.stderr)
    assert not (envs / "current").exists()
    assert [p.name for p in envs.iterdir()] == [".lock"]
