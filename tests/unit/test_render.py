"""render(spec, runtime) -> traitlets Config: assert on values, and golden-test the whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hubkeeper.config import parse
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.context.runtime import Runtime
from hubkeeper.render.jupyterhub import as_plain, as_python, render
from hubkeeper.roster import build_roster
from hubkeeper.state.statedir import Secrets, StatePaths

GOLDEN = Path(__file__).parent / "golden"
STATE = StatePaths(Path("/var/lib/hubkeeper/course"))
SECRETS = Secrets(cookie_secret_file="/var/lib/hubkeeper/course/secrets/cookie-secret",
                  proxy_token="PROXY", service_token="SERVICE", shared_password="USERPW",
                  admin_password="ADMINPW", github_client_id="GHID",
                  github_client_secret="GHSECRET", status_token="STATUS",
                  api_token="API", metrics_token="METRICS")


def runtime(text: str, mode: str = "system", as_root: bool = True,
            removed: frozenset[str] = frozenset()) -> Runtime:
    roster = build_roster(LoadedSpec(parse(text), Path("/srv/course/hub.yaml")))
    return Runtime(mode=mode, state=STATE, secrets=SECRETS,  # type: ignore[arg-type]
                   proxy_command=("/opt/hk/bin/configurable-http-proxy",),
                   singleuser_command=("/opt/hk/bin/jupyterhub-singleuser",), as_root=as_root,
                   roster=roster, removed=removed, config_dir=Path("/srv/course"),
                   python="/opt/hk/bin/python")


def rendered(text: str, *args, **kwargs):
    return render(parse(text), runtime(text, *args, **kwargs))


COURSE = """
hub: {name: course, ip: 0.0.0.0, port: 443, base_url: /physics/, api_port: 9081}
proxy: {api_port: 9001}
auth: {kind: pam}
users: {admins: [prof], allowed: [ann, bo]}
"""


def test_hub_section() -> None:
    c = rendered(COURSE)
    assert c.JupyterHub.bind_url == "http://0.0.0.0:443/physics/"
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:9081"
    assert c.JupyterHub.db_url == "sqlite:////var/lib/hubkeeper/course/jupyterhub.sqlite"
    assert c.JupyterHub.cookie_secret_file == SECRETS.cookie_secret_file
    assert c.JupyterHub.cleanup_servers is True


def test_proxy_section() -> None:
    c = rendered(COURSE)
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:9001"
    assert c.ConfigurableHTTPProxy.auth_token == "PROXY"
    assert c.ConfigurableHTTPProxy.command == ["/opt/hk/bin/configurable-http-proxy"]
    assert c.ConfigurableHTTPProxy.pid_file == "/var/lib/hubkeeper/course/run/proxy.pid"


def test_pam_auth_and_users() -> None:
    c = rendered(COURSE)
    assert c.JupyterHub.authenticator_class == "hubkeeper.hub.auth.PAMAuthenticator"
    assert c.PAMAuthenticator.account_prefix == ""
    assert c.Authenticator.admin_users == {"prof"}
    assert c.Authenticator.allowed_users == {"prof", "ann", "bo"}
    assert c.Authenticator.blocked_users == set()
    assert c.Authenticator.allow_all is False
    assert "SharedPasswordAuthenticator" not in c


def test_shared_password_auth_sets_both_passwords() -> None:
    c = rendered("auth: {kind: shared-password}\nusers: {admins: [prof], allowed: [ann]}")
    assert c.JupyterHub.authenticator_class.endswith("SharedPasswordAuthenticator")
    assert c.SharedPasswordAuthenticator.user_password == "USERPW"
    assert c.SharedPasswordAuthenticator.admin_password == "ADMINPW"


def test_system_mode_spawner() -> None:
    c = rendered(COURSE)
    assert c.JupyterHub.spawner_class == "hubkeeper.hub.spawner.LocalSpawner"
    assert c.HubkeeperSpawner.personal is False
    assert c.Spawner.cmd == ["/opt/hk/bin/jupyterhub-singleuser"]
    assert "args" not in c.Spawner


def test_personal_mode_spawner_as_root_allows_root_server() -> None:
    c = rendered("users: {allowed: [ann]}", "personal", as_root=True)
    assert c.HubkeeperSpawner.personal is True
    assert c.HubkeeperSpawner.home_root == "/var/lib/hubkeeper/course/users"
    assert c.Spawner.args == ["--ServerApp.allow_root=True"]


def test_personal_mode_as_user_does_not_allow_root() -> None:
    c = rendered("users: {allowed: [ann]}", "personal", as_root=False)
    assert "args" not in c.Spawner


def test_service_token_has_least_scopes() -> None:
    c = rendered(COURSE)
    assert c.JupyterHub.services[0] == {"name": "hubkeeper-api", "api_token": "API"}
    role = c.JupyterHub.load_roles[0]
    assert role["services"] == ["hubkeeper-api"]
    # the web pages' service (web.enabled) is apart, with a token of its own and no role
    assert "hubkeeper" not in {service["name"] for service in c.JupyterHub.services}
    assert set(role["scopes"]) == {"read:hub", "list:users", "read:users", "read:servers",
                                   "admin:users", "admin:groups", "servers", "users:activity",
                                   "tokens!user=hubkeeper-canary"}  # upgrade's canary only
    assert "admin:servers" not in role["scopes"] and "admin:auth_state" not in role["scopes"]
    assert "tokens" not in role["scopes"]  # no token of any other user


def test_status_has_a_token_that_changes_nothing() -> None:
    c = rendered(COURSE)
    assert c.JupyterHub.services[1] == {"name": "hubkeeper-status", "api_token": "STATUS"}
    role = c.JupyterHub.load_roles[1]
    assert role["services"] == ["hubkeeper-status"]
    assert set(role["scopes"]) == {"read:hub", "list:users", "read:users", "read:servers"}


def test_the_hub_checks_who_holds_the_proxy_api_before_sending_its_token() -> None:
    assert rendered(COURSE).JupyterHub.proxy_class == "hubkeeper.hub.chp.CheckedProxy"


def test_jupyterhub_accepts_the_rendered_config() -> None:
    """The real JupyterHub application takes the rendered values as its own."""
    from jupyterhub.app import JupyterHub

    app = JupyterHub(config=rendered(COURSE))
    assert app.bind_url == "http://0.0.0.0:443/physics/"
    assert app.hub_bind_url == "http://127.0.0.1:9081"
    assert app.cleanup_servers is True


NATIVE = """
hub: {name: lab, ip: 0.0.0.0}
auth: {kind: native, minimum_password_length: 12, ask_email_on_signup: true}
users: {admins: [prof], allowed: [ann], groups: {tas: [ann]}}
"""

GITHUB = """
hub: {name: physics, ip: 0.0.0.0, port: 443, base_url: /physics/}
auth:
  kind: github
  github:
    callback_url: https://hub.example.org/physics/hub/oauth_callback
    organizations: [physics-dept, "chem-dept:lab-assistants"]
    teams_to_groups: {"physics-dept:tas": tas, "chem-dept:lab-assistants": lab}
users:
  admins: [prof]
  groups: {lecturers: [prof]}
"""

GOLDEN_CASES = {"course": COURSE, "native": NATIVE, "github": GITHUB}


def portable(plain: dict) -> dict:
    """The golden files must not depend on where the venv is."""
    from hubkeeper.render.jupyterhub import HUBKEEPER_TEMPLATES, native_templates

    paths = plain.get("JupyterHub", {}).get("template_paths")
    if paths:
        plain["JupyterHub"]["template_paths"] = [
            p.replace(native_templates(), "<nativeauthenticator>/templates")
            .replace(HUBKEEPER_TEMPLATES, "<hubkeeper>/hub/templates") for p in paths]
    return plain


def test_native_auth() -> None:
    from hubkeeper.render.jupyterhub import HUBKEEPER_TEMPLATES, native_templates

    c = rendered(NATIVE)
    assert c.JupyterHub.authenticator_class == "hubkeeper.hub.auth.NativeAuthenticator"
    assert c.NativeAuthenticator.open_signup is False
    assert c.NativeAuthenticator.minimum_password_length == 12
    assert c.NativeAuthenticator.check_common_password is True
    assert c.NativeAuthenticator.ask_email_on_signup is True
    # hubkeeper's sign-up page (the invite code) before nativeauthenticator's own pages
    assert c.JupyterHub.template_paths == [HUBKEEPER_TEMPLATES, native_templates()]
    assert Path(native_templates(), "signup.html").is_file()
    assert c.NativeAuthenticator.invite_codes_file.endswith("/secrets/invite-codes.json")
    assert c.Authenticator.admin_users == {"prof"}  # they approve sign-ups
    assert c.Authenticator.allowed_users == {"prof", "ann"}
    assert c.JupyterHub.load_groups == {"tas": {"users": ["ann"]}}
    assert "SharedPasswordAuthenticator" not in c and "GitHubOAuthenticator" not in c


def test_github_auth() -> None:
    c = rendered(GITHUB)
    assert c.JupyterHub.authenticator_class == "hubkeeper.hub.auth.GitHubTeamsAuthenticator"
    assert c.GitHubOAuthenticator.client_id == "GHID"
    assert c.GitHubOAuthenticator.client_secret == "GHSECRET"
    assert c.GitHubOAuthenticator.oauth_callback_url == \
        "https://hub.example.org/physics/hub/oauth_callback"
    assert c.GitHubOAuthenticator.allowed_organizations == {"physics-dept",
                                                            "chem-dept:lab-assistants"}
    assert c.GitHubOAuthenticator.scope == ["read:org"]
    assert c.Authenticator.manage_groups is True
    assert c.GitHubOAuthenticator.populate_teams_in_auth_state is True
    assert c.HubkeeperAuthenticator.group_map == {"physics-dept:tas": "tas",
                                                  "chem-dept:lab-assistants": "lab"}
    assert c.HubkeeperAuthenticator.roster_groups == {"prof": ["lecturers"]}
    assert c.Authenticator.admin_users == {"prof"}
    # the authenticator owns group membership: JupyterHub refuses load_groups then
    assert "load_groups" not in c.JupyterHub
    assert "NativeAuthenticator" not in c and "template_paths" not in c.JupyterHub


def test_github_without_teams_leaves_groups_to_the_roster() -> None:
    c = rendered(GITHUB.replace(
        'teams_to_groups: {"physics-dept:tas": tas, "chem-dept:lab-assistants": lab}', ""))
    assert "manage_groups" not in c.Authenticator
    assert set(c.GitHubTeamsAuthenticator) == {"github_ids_file"}  # no teams, ids bound
    assert "group_map" not in c.HubkeeperAuthenticator
    assert c.JupyterHub.load_groups == {"lecturers": {"users": ["prof"]}}


def test_github_roster_only_asks_github_for_nothing_more_than_the_login() -> None:
    c = rendered(GITHUB.replace('organizations: [physics-dept, "chem-dept:lab-assistants"]', "")
                 .replace('teams_to_groups: {"physics-dept:tas": tas, '
                          '"chem-dept:lab-assistants": lab}', ""))
    assert c.GitHubOAuthenticator.scope == []
    assert c.GitHubOAuthenticator.allowed_organizations == set()


def test_github_team_group_also_in_the_roster_csv_is_refused(tmp_path: Path) -> None:
    from hubkeeper.base.errors import HubkeeperError

    (tmp_path / "people.csv").write_text("username,groups\nann,tas\n")
    text = GITHUB.replace("groups: {lecturers: [prof]}", "roster: {csv: people.csv}")
    spec = parse(text)
    roster = build_roster(LoadedSpec(spec, tmp_path / "hub.yaml"))
    with pytest.raises(HubkeeperError, match="tas come both from the roster and from "
                                             "auth.github's groups"):
        render(spec, Runtime(mode="system", state=STATE, secrets=SECRETS,
                             proxy_command=("p",), singleuser_command=("s",), as_root=True,
                             roster=roster))


def test_redacted_secrets_reach_the_github_config() -> None:
    spec = parse(GITHUB)
    hidden = Secrets.redacted(STATE)
    c = render(spec, Runtime(mode="system", state=STATE, secrets=hidden,
                             proxy_command=("p",), singleuser_command=("s",), as_root=True,
                             roster=build_roster(LoadedSpec(spec, Path("/srv/hub.yaml")))))
    assert c.GitHubOAuthenticator.client_id == "<redacted>"
    assert c.GitHubOAuthenticator.client_secret == "<redacted>"
    assert "GHSECRET" not in as_python(c)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden(name: str) -> None:
    plain = portable(as_plain(rendered(GOLDEN_CASES[name])))
    golden = GOLDEN / f"render-{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(plain, indent=2, sort_keys=True) + "\n")
    assert plain == json.loads(golden.read_text())
    if name == "course":
        python = as_python(rendered(COURSE))
        assert "c.JupyterHub.bind_url = 'http://0.0.0.0:443/physics/'" in python.splitlines()


ROSTER = """
users:
  admins: [prof]
  groups: {tas: [ann, cy]}
  locked: [cy]
  account_prefix: "jupyter-"
  roster:
    entries: [{username: ann, groups: [students]}, {username: bo, groups: [students]}]
    ranges: ["ws{1..2}"]
auth: {kind: pam}
"""


def test_roster_users_groups_and_locks() -> None:
    c = rendered(ROSTER, removed=frozenset({"gone"}))
    assert c.Authenticator.allowed_users == {"prof", "ann", "bo", "ws1", "ws2"}
    assert c.Authenticator.admin_users == {"prof"}
    assert c.Authenticator.blocked_users == {"cy", "gone"}  # locked, and removed from roster
    assert c.JupyterHub.load_groups == {"students": {"users": ["ann", "bo"]},
                                        "tas": {"users": ["ann"]}}  # cy is locked


def test_account_prefix_reaches_spawner_and_pam() -> None:
    c = rendered(ROSTER)
    assert c.HubkeeperSpawner.account_prefix == "jupyter-"
    assert c.PAMAuthenticator.account_prefix == "jupyter-"


def test_default_login_is_pam_for_accounts_and_a_shared_password_otherwise() -> None:
    text = "users: {allowed: [ann]}"
    assert rendered(text, "system").JupyterHub.authenticator_class == \
        "hubkeeper.hub.auth.PAMAuthenticator"
    assert rendered(text, "personal").JupyterHub.authenticator_class.endswith(
        "SharedPasswordAuthenticator")


HOOKS = """
users: {allowed: [ann]}
hooks:
  on_failure: warn
  as_root:
    - {script: hooks/prepare.sh, timeout: 1m30s}
    - {script: /opt/hooks/quota}
  as_user:
    - {script: ./hooks/../hooks/links.sh, timeout: 2s}
data: {min_free: 500M}
"""


def test_hooks_reach_the_spawner_as_absolute_paths_and_seconds() -> None:
    c = rendered(HOOKS)
    assert c.HubkeeperSpawner.hooks_as_root == [
        {"script": "/srv/course/hooks/prepare.sh", "name": "hooks/prepare.sh", "timeout": 90.0},
        {"script": "/opt/hooks/quota", "name": "/opt/hooks/quota", "timeout": 30.0},
    ]
    assert c.HubkeeperSpawner.hooks_as_user == [
        {"script": "/srv/course/hooks/links.sh", "name": "./hooks/../hooks/links.sh",
         "timeout": 2.0}]
    assert c.HubkeeperSpawner.hooks_on_failure == "warn"
    assert c.HubkeeperSpawner.hook_log_dir == "/var/lib/hubkeeper/course/logs/hooks"
    assert c.HubkeeperSpawner.hub_name == "hub"
    assert c.HubkeeperSpawner.min_free_bytes == 500 * 1024**2
    # JupyterHub's start deadline covers the hooks too: 60 s for the server plus theirs.
    assert c.Spawner.start_timeout == 60 + 900 + 90 + 30 + 2  # the line, the hooks, the server


def test_without_hooks_the_start_timeout_is_the_line_and_the_server() -> None:
    c = rendered("users: {allowed: [ann]}")
    assert c.HubkeeperSpawner.hooks_as_root == []
    assert c.HubkeeperSpawner.hooks_as_user == []
    assert c.HubkeeperSpawner.hooks_on_failure == "fail"
    assert c.Spawner.start_timeout == 60 + 900  # starts.queue_timeout, then the server
    assert c.HubkeeperSpawner.min_free_bytes == 1024**3


def test_hook_log_dir_is_relative_to_hub_yaml() -> None:
    c = rendered("users: {allowed: [ann]}\nhooks: {log_dir: private/hooklogs}\n"
                 "data: {min_free: 0}")
    assert c.HubkeeperSpawner.hook_log_dir == "/srv/course/private/hooklogs"
    assert c.HubkeeperSpawner.min_free_bytes == 0


def test_the_spawner_accepts_the_rendered_hook_config() -> None:
    from hubkeeper.hub.spawner import LocalSpawner

    spawner = LocalSpawner(config=rendered(HOOKS))
    assert spawner.hooks_as_root[0]["timeout"] == 90.0
    assert spawner.hooks_on_failure == "warn"
    assert spawner.min_free_bytes == 500 * 1024**2



def test_environments_run_from_their_current_build() -> None:
    text = COURSE.replace("users: {admins: [prof], allowed: [ann, bo]}",
                          "users: {admins: [prof], allowed: [ann, bo], groups: {lab: [ann]}}")
    text += """
environments:
  base: {packages: [tabulate], default: true}
  stats: {packages: [toolz], groups: [lab], home_template: templates/stats, ui: notebook,
          env: {DATA: /srv/stats}}
servers:
  ui: /voila/render/intro.ipynb
  env: {NLTK_DATA: /srv/nltk_data, DATA: /srv/data}
  groups:
    lab: {env: {DATA: /srv/lab}}
    tas: {}
"""
    c = rendered(text)
    assert c.HubkeeperSpawner.default_environment == "base"
    assert c.HubkeeperSpawner.environments == {
        "base": {"path": "/var/lib/hubkeeper/course/envs/base",
                 "groups": [], "home_template": "", "default_url": "/voila/render/intro.ipynb"},
        "stats": {"path": "/var/lib/hubkeeper/course/envs/stats",
                  "groups": ["lab"], "home_template": "/srv/course/templates/stats",
                  "default_url": "/tree", "env": {"DATA": "/srv/stats"}},
    }
    # the UI of a server without environments, and the variables over every environment's
    assert c.Spawner.default_url == "/voila/render/intro.ipynb"
    assert c.HubkeeperSpawner.server_env == {"NLTK_DATA": "/srv/nltk_data", "DATA": "/srv/data"}
    assert c.HubkeeperSpawner.group_env == [{"group": "lab", "env": {"DATA": "/srv/lab"}}]
    plain = rendered(COURSE)
    assert plain.Spawner.default_url == "/lab"
    assert "server_env" not in plain.HubkeeperSpawner
    assert "warm_kernels" not in plain.HubkeeperSpawner  # off unless asked
    assert rendered(COURSE + "servers: {warm_kernels: true}\n").HubkeeperSpawner.warm_kernels


def test_a_start_gets_its_environments_ui_and_variables_by_precedence() -> None:
    """hub-wide < the environment's < the user's groups' (the first listed under
    servers.groups wins); the UI is the chosen environment's."""
    from types import SimpleNamespace

    from hubkeeper.hub.spawner import LocalSpawner

    text = COURSE.replace("users: {admins: [prof], allowed: [ann, bo]}",
                          "users: {admins: [prof], allowed: [ann, bo], "
                          "groups: {lab: [ann], tas: [ann, bo]}}")
    text += """
environments:
  base: {default: true}
  stats: {ui: notebook, env: {WHO: stats, DATA: /srv/stats}}
servers:
  env: {WHO: hub, DATA: /srv/data, NLTK_DATA: /srv/nltk_data}
  groups:
    tas: {env: {WHO: tas}}
    lab: {env: {WHO: lab, LAB: 'yes'}}
"""
    spawner = LocalSpawner(config=rendered(text))
    groups = {"ann": ["lab", "tas"], "bo": ["tas"], "cy": []}

    def started(name: str, environment: str) -> tuple[str, dict[str, str]]:
        spawner.user = SimpleNamespace(name=name, groups=[SimpleNamespace(name=group)
                                                          for group in groups[name]])
        spawner.use_environment(environment)
        return spawner.default_url, spawner.configured_env()

    assert started("cy", "stats") == ("/tree", {
        "WHO": "stats", "DATA": "/srv/stats", "NLTK_DATA": "/srv/nltk_data"})
    assert started("ann", "stats") == ("/tree", {
        "WHO": "tas", "DATA": "/srv/stats", "NLTK_DATA": "/srv/nltk_data", "LAB": "yes"})
    # the next start in another environment gets that one's UI, not the last one's
    assert started("bo", "base") == ("/lab", {
        "WHO": "tas", "DATA": "/srv/data", "NLTK_DATA": "/srv/nltk_data"})


def test_a_single_environment_is_the_default_and_none_means_hubkeepers_venv() -> None:
    c = rendered(COURSE + "environments: {only: {packages: [tabulate]}}\n")
    assert c.HubkeeperSpawner.default_environment == "only"
    c = rendered(COURSE)
    assert c.HubkeeperSpawner.environments == {}
    assert c.HubkeeperSpawner.default_environment == ""
    assert c.Spawner.cmd == ["/opt/hk/bin/jupyterhub-singleuser"]


def test_culling_is_on_by_default_and_never_deletes_users() -> None:
    c = rendered(COURSE)
    (culler,) = [s for s in c.JupyterHub.services if s["name"] == "idle-culler"]
    assert culler["command"] == [
        "setpriv", "--pdeathsig", "TERM", "--", "/opt/hk/bin/python", "-m",
        "jupyterhub_idle_culler", "--timeout=3600", "--cull-every=600", "--cull-users=False",
        "--remove-named-servers=False"]
    (role,) = [r for r in c.JupyterHub.load_roles if r["name"] == "idle-culler"]
    assert role["services"] == ["idle-culler"]
    assert set(role["scopes"]) == {"list:users", "read:users:activity", "read:servers",
                                   "delete:servers"}
    assert not any(scope.startswith("admin:") for scope in role["scopes"])
    # JupyterHub's own 5-minute activity interval is fine for an hour of idleness.
    assert "last_activity_interval" not in c.JupyterHub
    assert "environment" not in c.Spawner


def test_short_culling_reports_activity_more_often_and_max_age_is_passed() -> None:
    c = rendered(COURSE + "culling: {idle: 40s, every: 10s, max_age: 8h}\n")
    (culler,) = [s for s in c.JupyterHub.services if s["name"] == "idle-culler"]
    assert "--timeout=40" in culler["command"] and "--max-age=28800" in culler["command"]
    assert c.JupyterHub.last_activity_interval == 10
    assert c.Spawner.environment == {"JUPYTERHUB_ACTIVITY_INTERVAL": "10"}


def test_prometheus_token_reads_metrics_only() -> None:
    c = rendered(COURSE)
    assert {"name": "hubkeeper-metrics", "api_token": "METRICS"} in c.JupyterHub.services
    (role,) = [r for r in c.JupyterHub.load_roles if r["services"] == ["hubkeeper-metrics"]]
    assert role["scopes"] == ["read:metrics"]


def test_culling_off_renders_no_culler() -> None:
    c = rendered(COURSE + "culling: {enabled: false}\n")
    assert [s["name"] for s in c.JupyterHub.services] == ["hubkeeper-api", "hubkeeper-status",
                                                         "hubkeeper-metrics"]


def test_limits_reach_the_spawner_per_hub_and_per_group() -> None:
    c = rendered(COURSE + "limits: {memory: 2G, cpu: 1, groups: {tas: {memory: 4G}}}\n")
    assert c.HubkeeperSpawner.limits == {"memory": 2 * 1024**3, "cpu": 1.0, "pids": 1024}
    assert c.HubkeeperSpawner.group_limits == {"tas": {"memory": 4 * 1024**3, "cpu": None,
                                                       "pids": None}}
    # the process limit is on by default; 0 turns it off
    assert rendered(COURSE).HubkeeperSpawner.limits == {"memory": None, "cpu": None,
                                                        "pids": 1024}
    assert rendered(COURSE + "limits: {pids: 0}\n").HubkeeperSpawner.limits["pids"] is None
