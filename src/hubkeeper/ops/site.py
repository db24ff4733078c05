"""hub.url on this machine, carried out: the nginx site, the certificate, certbot's hook.

`site_plan` observes and plans (plan/site.py) without changing anything. `apply_site` runs
the plan: removals of an earlier hub.url's files one action at a time through the executor,
then the site itself as one step, because it is written, checked by nginx, served and put
back on failure as a whole (host/site.deploy). `remove_site` (hub.url's removal, `retire`)
runs the same removal actions.
"""

from __future__ import annotations

import logging
import os

from hubkeeper.config.loader import LoadedSpec
from hubkeeper.host import nginxctl
from hubkeeper.host.site import (
    HOOK_KIND,
    certbot,
    check,
    deploy,
    desired,
    observe,
)
from hubkeeper.ops.execute import Effector, Effectors, execute
from hubkeeper.plan.actions import Action
from hubkeeper.plan.site import SitePlan, differs, plan_site, reloads_after, removals
from hubkeeper.render.nginx import public_host
from hubkeeper.state.installed import install_file, remove_file
from hubkeeper.state.journal import Journal

log = logging.getLogger(__name__)


def site_plan(loaded: LoadedSpec, journal: Journal) -> SitePlan:
    """What apply_site would do. Changes nothing; raises InvalidInput on a site_problem."""
    check(loaded, journal)
    want = desired(loaded)
    return plan_site(want, observe(loaded, journal, want), journal,
                     loaded.spec.nginx.main_config)


def _reload(action: Action) -> None:
    nginxctl.check_config(action.subject)
    nginxctl.reload_or_start(action.subject)


def removal_effectors(journal: Journal) -> Effectors:
    """remove-nginx-site, remove-certbot-hook (host/installed.remove_file journals each:
    "removing" before the unlink, the record dropped after) and reload-nginx."""
    def remove(action: Action) -> None:
        remove_file(journal, action.subject)

    return {"remove-nginx-site": Effector(remove), "remove-certbot-hook": Effector(remove),
            "reload-nginx": Effector(_reload)}


def removal_actions(loaded: LoadedSpec, journal: Journal) -> list[Action]:
    """Every journaled site and hook (a hand-edited one stays, with a log line), then a
    reload of each running nginx that served one."""
    facts = observe(loaded, journal, None)
    actions, notes = removals(journal, facts, set())
    for note in notes:
        log.info("left alone: %s", note)
    spec = loaded.spec
    also = {spec.nginx.main_config} if spec.hub.url else set()
    return actions + reloads_after(actions, facts, also, spec.nginx.main_config)


def remove_site(loaded: LoadedSpec, journal: Journal) -> tuple[Action, ...]:
    """Remove this hub's journaled nginx sites and certbot hooks and reload nginx (for
    hub.url's removal and for `retire`). Hand-edited files stay. The certificate stays
    (`certbot delete --cert-name <host>` removes it)."""
    return execute(removal_actions(loaded, journal), removal_effectors(journal), journal)


def _nginx_done(verb: str, main: str) -> Action:
    return Action("reload-nginx" if verb == "reload" else "start-nginx", main)


def apply_site(loaded: LoadedSpec, journal: Journal) -> tuple[Action, ...]:
    """Make nginx serve hub.url as hub.yaml says (or stop serving it when hub.url is gone).
    Returns what was done."""
    check(loaded, journal)
    spec = loaded.spec
    want = desired(loaded)
    if want is None:
        return remove_site(loaded, journal)
    facts = observe(loaded, journal, want)
    keep = {want.site_path} | ({want.hook_path} if want.hook_path else set())
    planned, _ = removals(journal, facts, keep)
    done = list(execute(planned, removal_effectors(journal), journal))
    main = spec.nginx.main_config
    if want.bootstrap is not None:
        os.makedirs(spec.tls.webroot, mode=0o755, exist_ok=True)
        if differs(journal, facts, want.site_path, want.bootstrap):  # not left by a failure
            done.append(Action("install-nginx-site", want.site_path,
                               "HTTP only, for Let's Encrypt's challenge"))
        verb = deploy(spec, journal, want.site_path, want.bootstrap, https=False,
                      certificate_sha256=None, force_reload=bool(planned))
        if verb:
            done.append(_nginx_done(verb, main))
        certbot(spec)
        done.append(Action("get-certificate", public_host(spec), "Let's Encrypt"))
        want = desired(loaded)  # now with the certificate's fingerprint
        assert want is not None
        facts = observe(loaded, journal, want)
    if want.hook is not None and want.hook_path and install_file(
            journal, want.hook_path, want.hook, HOOK_KIND, mode=0o755):
        done.append(Action("install-certbot-hook", want.hook_path))
    site_changed = differs(journal, facts, want.site_path, want.site)
    verb = deploy(spec, journal, want.site_path, want.site, https=True,
                  certificate_sha256=want.certificate_sha256, force_reload=bool(planned))
    if site_changed:
        done.append(Action("install-nginx-site", want.site_path))
    if verb:
        done.append(_nginx_done(verb, main))
    return tuple(done)
