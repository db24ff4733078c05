"""Text for the doctor and the operations it checks: doctor, service, tls status."""

from __future__ import annotations

import textwrap

from rich.console import Console

from hubkeeper.cli.render_base import text
from hubkeeper.verbs.doctor import DoctorResult
from hubkeeper.verbs.service import (
    ServiceInstall,
    ServiceState,
    ServiceUninstall,
    not_running_message,
)
from hubkeeper.verbs.tls import TlsStatusResult

_DOCTOR_MARKS = {"ok": "ok", "warning": "WARNING", "problem": "PROBLEM"}
DOCTOR_OK_LISTED = 5  # more ok findings in one check are counted, not listed (--json lists)
WIDTH = 100


def _noun(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@text.register
def _(result: DoctorResult, console: Console) -> None:
    def say(line: str = "") -> None:
        console.print(line, highlight=False, markup=False, emoji=False)

    def para(mark: str, body: str) -> None:
        say(textwrap.fill(body, WIDTH, initial_indent=f"  {mark:<9}",
                          subsequent_indent=" " * 11, break_on_hyphens=False))

    say(f"hub '{result.hub}' ({result.mode} mode), {result.config}")
    if result.fixing:
        say()
        if not result.changes:
            say("--fix: nothing was safe to repair; nothing was changed")
        else:
            say(f"--fix made {_noun(len(result.changes), 'change')}; what remains is below:")
        for change in result.changes:
            if change.error:
                para("FAILED", f"{change.command}: {change.error}")
            else:
                para("changed", f"{change.command}: {change.before} -> {change.after}")
    for check in result.checks:
        found = [finding for finding in result.findings if finding.check == check.name]
        say()
        say(check.title)
        if not found:
            para("-", "nothing to check")
        fine = [finding for finding in found if finding.status == "ok"]
        if len(fine) > DOCTOR_OK_LISTED:
            para("ok", f"{len(fine)} checked, each as it should be (--json lists them)")
        else:
            for finding in fine:
                para("ok", finding.explanation)
        for finding in found:
            if finding.status == "ok":
                continue
            para(_DOCTOR_MARKS[finding.status], finding.explanation)  # names its fix
    problems, warnings = result.count("problem"), result.count("warning")
    say()
    if not problems and not warnings:
        say("nothing wrong")
        return
    remains = "remain" if result.fixing else "found"
    line = f"{_noun(problems, 'problem')} and {_noun(warnings, 'warning')} {remains}"
    if result.fixable and not result.fixing:
        line += (f"; `hubkeeper doctor --fix` repairs {result.fixable} of them safely and "
                 "shows each change")
    say(line + (" (exit 1)" if problems else ""))


@text.register
def _(result: ServiceInstall, console: Console) -> None:
    lines = [f"wrote {result.path} (recorded in the journal)" if result.written else
             f"{result.path} already holds what hubkeeper writes: nothing changed"]
    if not result.systemd:
        lines.append(not_running_message(result.pid1))
        if result.hub_pid is not None:
            lines.append(f"a hub of this hub.yaml already runs (pid {result.hub_pid or '?'}, "
                         "`hubkeeper up`)")
    else:
        lines += [f"ran: {command}" for command in result.commands]
        lines.append(f"{result.unit}: {result.active}, {result.enabled}; its log: "
                     f"journalctl -u {result.unit}")
        if result.restart_needed:
            lines.append(f"the running hub keeps the old unit until `systemctl restart "
                         f"{result.unit}` (that stops every user's server)")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: ServiceUninstall, console: Console) -> None:
    reload = "systemctl daemon-reload"  # runs after the files are gone
    lines = [f"ran: {command}" for command in result.commands if command != reload]
    lines += [f"removed {path} (and its journal record)" for path in result.removed]
    lines += [f"ran: {reload}"] * (reload in result.commands)
    if not result.removed:
        lines.append(f"no unit of hub '{result.hub}' was installed by hubkeeper: nothing "
                     "to remove")
    if result.left_alone:
        lines.append(f"{result.left_alone} was not written by hubkeeper: left alone")
    if not result.systemd and result.removed:
        lines.append(f"systemd is not running on this machine (PID 1 is {result.pid1}): "
                     "there was nothing to stop or disable")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: ServiceState, console: Console) -> None:
    lines = [f"{result.path}: {result.file}: {result.detail}"]
    if result.systemd:
        lines.append(f"{result.unit}: {result.active}, {result.enabled}")
    else:
        lines.append(f"systemd is not running on this machine (PID 1 is {result.pid1})")
    if result.hub_pid is not None:
        lines.append(f"a hub of this hub.yaml runs (pid {result.hub_pid or '?'})")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: TlsStatusResult, console: Console) -> None:
    cert = result.certificate

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    say(f"{cert.url}: certificate {cert.file} ({cert.source})")
    if cert.present:
        say(f"  subject   {cert.subject}")
        say(f"  names     {', '.join(cert.names) or '-'}"
            + ("" if cert.covers_host else f"   (NOT {cert.host})"))
        say(f"  issuer    {cert.issuer}")
        say(f"  valid     {cert.not_before} to {cert.not_after} ({cert.days_left} days left)")
    say("ok" if cert.ok else f"PROBLEM: {cert.problem}")
