"""hub.url's nginx site, certificate and certbot hook: what `apply` would change. Pure.

`host/site.py` renders what hub.yaml asks for (`desired`) and observes the machine
(`observe`: the files hubkeeper wrote, whether nginx is installed and which nginx runs);
`ops/site.py` carries the actions out.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubkeeper.host.site import HOOK_KIND, SITE_KIND, Desired, SiteFacts
from hubkeeper.plan.actions import Action, Kind
from hubkeeper.state.installed import sha256_of
from hubkeeper.state.journal import Journal

OUR_KINDS: dict[str, Kind] = {SITE_KIND: "remove-nginx-site", HOOK_KIND: "remove-certbot-hook"}


@dataclass(frozen=True)
class SitePlan:
    actions: tuple[Action, ...]
    notes: tuple[str, ...]


def differs(journal: Journal, facts: SiteFacts, path: str, content: bytes) -> bool:
    """Whether `path` does not hold `content` as hubkeeper wrote it."""
    record = journal.files.get(path)
    found = facts.files.get(path)
    return not (record and record.state == "created" and found is not None
                and found.sha256 == sha256_of(content))


def removals(journal: Journal, facts: SiteFacts, keep: set[str]
             ) -> tuple[list[Action], list[str]]:
    """Journaled sites and hooks not in `keep`: removable ones, and notes on hand-edited
    ones, which stay."""
    actions, notes = [], []
    for path, record in sorted(journal.files.items()):
        if record.kind not in OUR_KINDS or path in keep:
            continue
        found = facts.files.get(path)
        if found is not None and found.problem:
            notes.append(f"{path} {found.problem}")
        elif found is not None and found.exists:
            actions.append(Action(OUR_KINDS[record.kind], path))
        else:
            actions.append(Action(OUR_KINDS[record.kind], path, "already gone"))
    return actions, notes


def main_config_of(facts: SiteFacts, path: str, default_main: str) -> str:
    """The nginx main configuration a site of ours names in its header, else the default."""
    found = facts.files.get(path)
    return (found.main_config if found is not None else None) or default_main


def reloads_after(removed: list[Action], facts: SiteFacts, also: set[str],
                  default_main: str) -> list[Action]:
    """reload-nginx for each running nginx that served a removed site (and `also`)."""
    if not facts.nginx or not any(a.kind == "remove-nginx-site" for a in removed):
        return []
    mains = set(also) | {main_config_of(facts, a.subject, default_main)
                         for a in removed if a.kind == "remove-nginx-site"}
    return [Action("reload-nginx", main) for main in sorted(mains) if main in facts.running]


def plan_site(desired: Desired | None, facts: SiteFacts, journal: Journal,
              default_main: str = "") -> SitePlan:
    """What ops.site.apply_site would do: `desired` None when hub.url is not set (then the
    sites of an earlier hub.url are removed). `default_main`: nginx.main_config, for a
    journaled site whose header names none."""
    if desired is None:
        actions, notes = removals(journal, facts, set())
        actions += reloads_after(actions, facts, set(), default_main)
        return SitePlan(tuple(actions), tuple(notes))
    keep = {desired.site_path} | ({desired.hook_path} if desired.hook_path else set())
    actions, notes = removals(journal, facts, keep)
    if desired.bootstrap is not None:
        staging = " (staging)" if desired.staging else ""
        actions.append(Action("install-nginx-site", desired.site_path,
                              "HTTP only, for Let's Encrypt's challenge"))
        actions.append(Action("get-certificate", desired.host,
                              f"Let's Encrypt{staging}, certbot --webroot {desired.webroot}"))
    if desired.hook is not None and desired.hook_path and differs(
            journal, facts, desired.hook_path, desired.hook):
        actions.append(Action("install-certbot-hook", desired.hook_path))
    if desired.bootstrap is not None or differs(journal, facts, desired.site_path,
                                                desired.site):
        actions.append(Action("install-nginx-site", desired.site_path))
    running = facts.nginx and desired.main_config in facts.running
    nginx = Action("reload-nginx" if running else "start-nginx", desired.main_config)
    if any(a.kind in ("install-nginx-site", "remove-nginx-site") for a in actions) \
            or nginx.kind == "start-nginx":
        actions.append(nginx)
    if desired.letsencrypt and desired.http_port != 80:
        notes.append(f"Let's Encrypt checks http://{desired.host}/ on port 80; "
                     f"nginx.http_port is {desired.http_port}, so port 80 must reach it")
    if facts.certificate_problem:
        notes.append(facts.certificate_problem)
    return SitePlan(tuple(actions), tuple(notes))
