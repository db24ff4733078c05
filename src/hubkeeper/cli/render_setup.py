"""Text for the verbs that set a hub up: check, init, render, plan, apply, export z2jh."""

from __future__ import annotations

from rich.console import Console

from hubkeeper.cli.render_base import LIST_AT_MOST, text
from hubkeeper.render.jupyterhub import as_python
from hubkeeper.verbs.apply import ApplyResult
from hubkeeper.verbs.check import CheckResult
from hubkeeper.verbs.init import InitResult
from hubkeeper.verbs.plan import PlanResult
from hubkeeper.verbs.render import RenderResult
from hubkeeper.verbs.z2jh import Z2jhResult


@text.register
def _(result: CheckResult, console: Console) -> None:
    where = (f"{result.mode} mode, {result.backend} backend" if result.backend != "kubernetes"
             else "kubernetes backend (runs on a cluster: `hubkeeper export z2jh`)")
    console.print(
        f"{result.config}: valid. Hub '{result.hub}', {where}, {result.auth} login, "
        f"{result.users} users ({result.admins} admins).",
        highlight=False,
    )
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


@text.register
def _(result: InitResult, console: Console) -> None:
    console.print(f"wrote {result.path}\nnext: hubkeeper --config {result.path} check, then up",
                  highlight=False)


@text.register
def _(result: RenderResult, console: Console) -> None:
    console.print(f"# JupyterHub configuration for {result.config} ({result.mode} mode); "
                  "secrets redacted", highlight=False)
    console.print(as_python(result.jupyterhub).rstrip("\n"), highlight=False, markup=False)
    for extra in result.extra_config:
        where = ("hub.extra_config: run in the hub after the configuration above"
                 if extra.runs == "hub" else
                 f"server_config of environment {extra.runs.split(':', 1)[1]!r}: run in "
                 "each of its servers after hubkeeper's server settings")
        console.print(f"\n# --- {extra.path} ({where}; the operator's own) ---",
                      highlight=False, markup=False)
        body = extra.text if extra.text is not None else "# (cannot be read: see `check`)\n"
        console.print(body.rstrip("\n"), highlight=False, markup=False)


def _actions(actions: tuple, console: Console) -> None:
    if len(actions) <= LIST_AT_MOST:
        for action in actions:
            console.print(f"  {action}", highlight=False, markup=False)
        return
    counts: dict[str, int] = {}
    for action in actions:
        counts[action.kind] = counts.get(action.kind, 0) + 1
    for kind, count in counts.items():
        console.print(f"  {kind}: {count}", highlight=False, markup=False)
    console.print("  (--json lists every action)", highlight=False)


@text.register
def _(result: PlanResult, console: Console) -> None:
    if result.actions:
        console.print(f"{len(result.actions)} change(s) for {result.users} roster users "
                      f"({result.mode} mode):", highlight=False)
        _actions(result.actions, console)
    else:
        console.print(f"no changes: {result.users} roster users are in step "
                      f"({result.mode} mode)", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    if result.service:
        console.print("`hubkeeper service install` would (apply does not):", highlight=False,
                      markup=False)
        _actions(result.service, console)


@text.register
def _(result: ApplyResult, console: Console) -> None:
    if result.actions:
        console.print(f"applied {len(result.actions)} change(s) for {result.users} roster "
                      "users:", highlight=False)
        _actions(result.actions, console)
    else:
        console.print(f"no changes: {result.users} roster users are in step", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    if result.credentials:
        console.print(f"generated passwords (and native sign-up's invite codes) are in "
                      f"{result.credentials} (mode 0600): hand "
                      "them out, then delete the file", highlight=False, markup=False)


@text.register
def _(result: Z2jhResult, console: Console) -> None:
    if result.values == "-":  # the values themselves, for a pipe or a redirect
        console.file.write(result.text)
        return
    lines = [f"wrote {result.values}: Zero to JupyterHub {result.chart_version} values for "
             f"hub '{result.hub}', {result.users} users, environments "
             f"{', '.join(result.environments)}"]
    if result.secrets:
        lines.append(f"wrote {result.secrets} (0600): the passwords and keys; keep it private")
    lines.append(f"  helm upgrade --install {result.hub} jupyterhub/jupyterhub --version "
                 f"{result.chart_version} --namespace {result.hub} --create-namespace "
                 f"-f {result.values}" + (f" -f {result.secrets}" if result.secrets else ""))
    console.print("\n".join(lines), highlight=False, markup=False)
