"""The hub, opened once: hub.yaml loaded and checked, who we are, where the state is, and
every value derived from them. A verb receives a `Hub`; it never loads, resolves or reads
state by itself.

`Hub.open` builds in this order (the first failing step is the error the operator sees):

1. the spec: hub.yaml loaded and validated (`config.loader.load`; InvalidInput, exit 2);
2. who we are: the effective uid (injectable: `euid=`), so root or not;
3. the state paths (`hub.state_dir`, or the default for root or not).

Then, on first use and once: the roster (`build_roster`), the mode (`resolve_mode`, after
the roster), the journal, the secrets. They are asked for, not built up front, because
some verbs must run where one of them cannot be had: `export z2jh` on a Kubernetes hub has
no mode on this machine, `status`, `tls status` and `service status` answer for a hub
whose roster CSV is gone, `retire` removes what the journal lists without the roster. A
verb that needs all of them asks `hub.resolved()`, which builds them in the order above.
(`restore --all --from DIR` opens no hub at all: hub.yaml may be gone with the machine.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError, Problem
from hubkeeper.base.whoami import effective_uid
from hubkeeper.config.loader import LoadedSpec, load, load_for_check
from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules.mode import Mode, auth_kind
from hubkeeper.config.types import config_relative
from hubkeeper.context import urls
from hubkeeper.context.runtime import resolve_mode
from hubkeeper.roster import Roster, build_roster
from hubkeeper.roster.build import FirstLogin
from hubkeeper.state import admitted
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import (
    Secrets,
    StatePaths,
    check_not_retired,
    read_secret,
    read_secrets,
    state_paths,
)


@dataclass(frozen=True)
class Hub:
    loaded: LoadedSpec
    euid: int
    paths: StatePaths
    problems: tuple[Problem, ...] = ()  # hub.yaml's cross-field problems, when `checking`

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, euid: int | None = None,
             checking: bool = False) -> Hub:
        """hub.yaml at `path`, as the account `euid` (default: this process's) sees it.
        `checking` (for `check`, which reports every problem at once): hub.yaml's
        cross-field problems are kept in `problems` instead of raised; its schema's still
        raise, since nothing can be built from a file that does not parse into a spec."""
        if not checking:
            return cls.of(load(path), euid=euid)
        loaded, problems = load_for_check(path)
        return cls.of(loaded, euid=euid, problems=tuple(problems))

    @classmethod
    def of(cls, loaded: LoadedSpec, *, euid: int | None = None,
           problems: tuple[Problem, ...] = ()) -> Hub:
        """A hub from an already loaded (or just edited) hub.yaml."""
        uid = effective_uid() if euid is None else euid
        return cls(loaded, uid, state_paths(loaded, uid == 0), problems)

    def with_roster_csv(self, csv: Path) -> Hub:
        """The same hub with `csv` as users.roster.csv (for `plan --roster-csv`, a roster
        looked at before it replaces the one hub.yaml names). Its problems name `csv`."""
        users = self.spec.users
        roster = users.roster.model_copy(update={"csv": str(csv.resolve())})
        spec = self.spec.model_copy(update={"users": users.model_copy(update={"roster": roster})})
        return Hub.of(LoadedSpec(spec, self.loaded.path, self.loaded.document), euid=self.euid)

    def reopen(self) -> Hub:
        """The same hub.yaml read again, as the same account: for a second look under a
        lock, or after an edit."""
        return Hub.open(self.path, euid=self.euid)

    # -- what hub.yaml says --------------------------------------------------------------

    @property
    def spec(self) -> HubSpec:
        return self.loaded.spec

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def directory(self) -> Path:
        """hub.yaml's directory: relative paths in it start here."""
        return self.loaded.directory

    @property
    def name(self) -> str:
        return self.spec.hub.name

    @property
    def backend(self) -> str:
        return self.spec.backend

    @property
    def is_root(self) -> bool:
        return self.euid == 0

    def relative(self, value: str) -> Path:
        """A path written in hub.yaml, relative to its directory."""
        return config_relative(self.directory, value)

    # -- built on first use, once ---------------------------------------------------------

    @cached_property
    def roster(self) -> Roster:
        """hub.yaml's roster, with the people an identity provider admitted at their first
        login (users.accounts: first_login)."""
        return build_roster(self.loaded, self.first_logins())

    def first_logins(self) -> tuple[FirstLogin, ...]:
        if self.spec.users.accounts != "first_login":
            return ()
        path = admitted.path_in(self.paths.root)
        try:
            people = admitted.load(path)
        except (OSError, ValueError, KeyError) as exc:
            raise HubkeeperError(
                f"the record of people admitted at first login, {path}, cannot be read: "
                f"{exc}",
                hint="run hubkeeper as the hub's account (root in system mode); if it is "
                "damaged, take it from the newest snapshot's hub/state/ folder") from None
        return tuple(FirstLogin(p.name, p.provider, p.subject, p.groups, p.admin)
                     for p in people.values())

    @cached_property
    def mode(self) -> Mode:
        """hub.mode with `auto` resolved and checked against who we are."""
        return resolve_mode(self.loaded, self.is_root)

    @cached_property
    def journal(self) -> Journal:
        """The journal as it was when first asked; `load_journal` reads it again."""
        return self.load_journal()

    def load_journal(self) -> Journal:
        """The journal as it is on disk now (after a change another step made)."""
        return Journal.load(self.paths.journal)

    def resolved(self) -> Hub:
        """The roster, then the mode, built now (in that order, so that the errors come in
        the order `check` reports them); returns the hub."""
        self.roster  # noqa: B018 -- built for its errors
        self.mode  # noqa: B018
        return self

    # -- state ------------------------------------------------------------------------------

    def check_not_retired(self) -> None:
        """Refuse a hub `hubkeeper retire` ended (or began to end)."""
        check_not_retired(self.paths)

    def secrets(self, redact: bool = False) -> Secrets:
        """The hub's secrets from the state dir; with `redact`, placeholders (nothing read)."""
        if redact:
            return Secrets.redacted(self.paths)
        auth = self.spec.auth
        return read_secrets(
            self.paths,
            self.relative(auth.password_file) if auth.password_file else None,
            self.relative(auth.admin_password_file) if auth.admin_password_file else None,
            github=auth.kind == "github", oidc=auth.kind == "oidc",
            ldap_bind=auth.kind == "ldap" and auth.ldap.lookup_dn_search_user is not None)

    def read_secret(self, name: str) -> str:
        return read_secret(self.paths, name)

    # -- derived values -------------------------------------------------------------------

    @property
    def public_url(self) -> str:
        """Where the hub's proxy answers on this machine."""
        return urls.public_url(self.spec)

    @property
    def hub_api_url(self) -> str:
        """The hub's own API address with base_url (HubAPI adds hub/api)."""
        return urls.hub_api_url(self.spec)

    @property
    def auth_kind(self) -> str:
        """auth.kind, or its default for the mode."""
        return auth_kind(self.spec, self.mode)
