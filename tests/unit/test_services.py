"""hub.yaml's services: the rendered JupyterHub services and roles (golden), the rules that
refuse a bad services section, and the login gate's pure decisions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from jupyterhub.app import JupyterHub
from jupyterhub.services.service import Service
from tornado import httputil

from hubkeeper.config import load, parse
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.rules.roster import group_reference_problems
from hubkeeper.context.runtime import Runtime
from hubkeeper.proc.gate import GateUsageError, child_environment, read_config
from hubkeeper.proc.gate_rules import (
    GateConfig,
    cross_site,
    refusal,
    rewrite_location,
    rewrite_set_cookie,
    upstream_headers,
    upstream_path,
)
from hubkeeper.render.jupyterhub import as_plain, render
from hubkeeper.roster import build_roster
from hubkeeper.state.statedir import Secrets, StatePaths
from tests.unit.test_schema import problems_of

GOLDEN = Path(__file__).parent / "golden"

SERVICES = """
hub: {name: course, base_url: /course/, url: "https://hub.example.edu/course/"}
tls: {letsencrypt_email: admin@example.edu}
auth: {kind: pam}
users: {admins: [prof], allowed: [ann, bo], groups: {stats: [ann]}}
services:
  - name: rstudio
    url: http://127.0.0.1:8787
    gate_port: 8788
    groups: [stats]
    user_header: X-RStudio-Username
    command: [/usr/lib/rstudio-server/bin/rserver, --www-port=8787, --auth-none=1]
    environment: {R_LIBS_SITE: /srv/R}
  - name: files
    url: http://localhost:9000/
    gate_port: 9001
  - name: grades
    hub_login: false
    url: http://127.0.0.1:9100
    command: [/srv/grades/run, --port=9100]
    environment: {GRADES_DB: /srv/grades/db}
  - name: nightly
    hub_login: false
    command: [/srv/nightly/run]
"""


def rendered(text: str):
    loaded = LoadedSpec(parse(text), Path("/srv/course/hub.yaml"))
    runtime = Runtime(
        mode="system", state=StatePaths(Path("/var/lib/hubkeeper/course")),
        secrets=Secrets(cookie_secret_file="/x", proxy_token="PROXY", service_token="SERVICE",
                        api_token="API", shared_password=None, admin_password=None),
        proxy_command=("/opt/hk/bin/configurable-http-proxy",),
        singleuser_command=("/opt/hk/bin/jupyterhub-singleuser",), as_root=True,
        roster=build_roster(loaded), config_dir=Path("/srv/course"),
        python="/opt/hk/bin/python")
    return render(loaded.spec, runtime)


def services_part(text: str) -> dict:
    """What hub.yaml's services render to (hubkeeper's own services and roles left out)."""
    plain = as_plain(rendered(text))["JupyterHub"]
    names = {service.name for service in parse(text).services}
    return {
        "services": [s for s in plain["services"] if s["name"] in names],
        "load_roles": [r for r in plain["load_roles"] if r["name"].startswith("service-")],
        "extra_user_scopes": plain.get("extra_user_scopes"),
        "public_url": plain.get("public_url"),
    }


def test_golden_services_and_roles() -> None:
    plain = services_part(SERVICES)
    golden = GOLDEN / "render-services.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(plain, indent=2, sort_keys=True) + "\n")
    assert plain == json.loads(golden.read_text())


def test_hubkeeper_service_stays_first_and_roles_are_appended() -> None:
    c = rendered(SERVICES)
    assert c.JupyterHub.services[0]["name"] == "hubkeeper-api"
    assert [s["name"] for s in c.JupyterHub.services[1:]
            if s["name"] != "idle-culler"] == ["hubkeeper-status", "hubkeeper-metrics",
                                                "rstudio", "files", "grades", "nightly"]
    assert c.JupyterHub.load_roles[0]["name"] == "hubkeeper-status"


def test_gate_for_hub_login_and_as_is_without() -> None:
    rstudio, files, grades, nightly = services_part(SERVICES)["services"]
    # The gate is the JupyterHub service; the real one is its child, after '--'.
    assert rstudio["url"] == "http://127.0.0.1:8788"
    assert rstudio["command"][:3] == ["/opt/hk/bin/python", "-m", "hubkeeper.proc.gate"]
    assert rstudio["command"][rstudio["command"].index("--") + 1:] == [
        "/usr/lib/rstudio-server/bin/rserver", "--www-port=8787", "--auth-none=1"]
    assert rstudio["oauth_client_allowed_scopes"] == ["read:users:groups!user"]
    assert "--" not in files["command"]  # external: no child
    assert "oauth_client_allowed_scopes" not in files  # no groups: nothing to read
    assert grades == {"name": "grades", "url": "http://127.0.0.1:9100",
                      "command": ["setpriv", "--pdeathsig", "TERM", "--",
                                  "/srv/grades/run", "--port=9100"],
                      "environment": {"GRADES_DB": "/srv/grades/db"},
                      "oauth_no_confirm": True, "display": True}
    assert nightly["display"] is False and "url" not in nightly


def test_jupyterhub_accepts_what_is_rendered() -> None:
    """JupyterHub's own classes: every service key is one it takes as input, and public_url
    goes with bind_url's base_url (JupyterHub refuses a public_url outside base_url)."""
    c = rendered(SERVICES)
    inputs = set(Service.class_trait_names(input=True))
    for entry in c.JupyterHub.services:
        assert set(entry) <= inputs, set(entry) - inputs
    app = JupyterHub(config=c)
    assert app.public_url == "https://hub.example.edu/course/"
    assert app.base_url == "/course/"
    assert app.extra_user_scopes == {"access:services!service=files",
                                     "access:services!service=grades",
                                     "access:services!service=nightly"}


def test_no_services_no_hub_url_nothing_added() -> None:
    c = rendered("users: {allowed: [ann]}\nculling: {enabled: false}")
    assert [s["name"] for s in c.JupyterHub.services] == ["hubkeeper-api", "hubkeeper-status",
                                                         "hubkeeper-metrics"]
    assert "public_url" not in c.JupyterHub
    assert "extra_user_scopes" not in c.JupyterHub


BASE = "users: {allowed: [a]}\n"
BAD = [
    ("duplicate name", "services:\n  - {name: r, url: 'http://127.0.0.1:1', gate_port: 2}\n"
     "  - {name: r, url: 'http://127.0.0.1:3', gate_port: 4}\n",
     "hub.yaml:3:12: services[1].name: 'r' is already item 1"),
    ("reserved name hubkeeper", "services:\n  - name: hubkeeper\n    hub_login: false\n"
     "    command: [x]\n",
     "hub.yaml:2:11: services[0].name: 'hubkeeper' is hubkeeper's own service; choose "
     "another name"),
    ("reserved name idle-culler", "services:\n  - name: idle-culler\n    hub_login: false\n"
     "    command: [x]\n",
     "hub.yaml:2:11: services[0].name: 'idle-culler' is hubkeeper's own service"),
    ("name with a capital", "services:\n  - {name: RStudio, hub_login: false, command: [x]}\n",
     "hub.yaml:2:12: services[0].name: 'RStudio' is not valid; use a letter, then up to 31 "
     "of a-z 0-9 '-' (it becomes the path /services/<name>/) (did you mean 'rstudio'?)"),
    ("hub_login without url", "services:\n  - name: r\n    command: [rserver]\n"
     "    gate_port: 8788\n",
     "hub.yaml:2:5: services[0]: hub_login needs url: the address the login gate passes "
     "requests to (http://127.0.0.1:<port>)"),
    ("hub_login without gate_port", "services:\n  - name: r\n    url: http://127.0.0.1:8787\n",
     "hub.yaml:2:5: services[0]: hub_login needs gate_port: the port on 127.0.0.1 the login "
     "gate listens on (a free port, not url's)"),
    ("non-loopback url", "services:\n  - name: r\n    url: http://10.0.0.5:8787\n"
     "    gate_port: 8788\n",
     "hub.yaml:3:10: services[0].url: 'http://10.0.0.5:8787' must be http://127.0.0.1:<port> "
     "(a service on this machine, no path), e.g. http://127.0.0.1:8787"),
    ("https url", "services:\n  - name: r\n    url: https://127.0.0.1:8787\n"
     "    gate_port: 8788\n",
     "hub.yaml:3:10: services[0].url: 'https://127.0.0.1:8787' must be http://127.0.0.1"),
    ("url with a path", "services:\n  - name: r\n    url: http://127.0.0.1:8787/rstudio/\n"
     "    gate_port: 8788\n",
     "hub.yaml:3:10: services[0].url: 'http://127.0.0.1:8787/rstudio/' must be"),
    ("url without port", "services:\n  - name: r\n    url: http://127.0.0.1/\n"
     "    gate_port: 8788\n",
     "hub.yaml:3:10: services[0].url: 'http://127.0.0.1/' needs a port from 1 to 65535"),
    ("gate_port without hub_login", "services:\n  - name: r\n    hub_login: false\n"
     "    url: http://127.0.0.1:8787\n    gate_port: 8788\n",
     "hub.yaml:5:16: services[0].gate_port: only used with hub_login: true (the login gate); "
     "remove it"),
    ("groups without hub_login", "services:\n  - name: r\n    hub_login: false\n"
     "    url: http://127.0.0.1:8787\n    groups: [stats]\n",
     "hub.yaml:5:13: services[0].groups: only used with hub_login: true"),
    ("gate on the hub's port", "hub: {port: 8000}\nservices:\n  - name: r\n"
     "    url: http://127.0.0.1:8787\n    gate_port: 8000\n",
     "hub.yaml:5:16: services[0].gate_port: port 8000 is already used by hub.port"),
    ("gate on its own url's port", "services:\n  - name: r\n    url: http://127.0.0.1:8787\n"
     "    gate_port: 8787\n",
     "hub.yaml:4:16: services[0].gate_port: port 8787 is already used by services[0].url"),
    ("bad user header", "services:\n  - name: r\n    url: http://127.0.0.1:8787\n"
     "    gate_port: 8788\n    user_header: 'X User'\n",
     "hub.yaml:5:18: services[0].user_header: 'X User' is not valid"),
    ("neither command nor url", "services:\n  - {name: r, hub_login: false}\n",
     "hub.yaml:2:5: services[0]: give command (the hub runs it), url (it runs elsewhere on "
     "this machine), or both"),
]


@pytest.mark.parametrize(("name", "text", "expected"), BAD, ids=[case[0] for case in BAD])
def test_bad_services_section(name: str, text: str, expected: str) -> None:
    problems = problems_of(text + BASE)
    assert any(p.startswith(expected) for p in problems), problems


def test_service_groups_must_be_roster_groups(tmp_path: Path) -> None:
    hub = tmp_path / "hub.yaml"
    hub.write_text("users: {allowed: [a], groups: {stats: [a]}}\nservices:\n  - name: r\n"
                   "    url: http://127.0.0.1:8787\n    gate_port: 8788\n"
                   "    groups: [stats, stat]\n")
    loaded = load(hub)
    problems = [str(p) for p in group_reference_problems(loaded, build_roster(loaded).groups)]
    assert problems == [f"{hub}:6:21: services[0].groups[1]: 'stat' is not a roster group "
                        "(roster groups: stats)"]


# ----- the gate's decisions
CONFIG = GateConfig(name="rstudio", prefix="/course/services/rstudio/", host="127.0.0.1",
                    port=8788, upstream="http://127.0.0.1:8787", groups=frozenset({"stats"}),
                    user_header="X-RStudio-Username", command=())


def request(method: str = "GET", uri: str = "/course/services/rstudio/x",
            **headers: str) -> httputil.HTTPServerRequest:
    found = httputil.HTTPHeaders({"Host": "hub.example.edu"})
    for key, value in headers.items():
        found.add(key.replace("_", "-"), value)
    made = httputil.HTTPServerRequest(
        headers=found, start_line=httputil.RequestStartLine(method, uri, "HTTP/1.1"))
    made.remote_ip = "127.0.0.1"
    return made


def test_refusal_by_group_and_kind() -> None:
    assert refusal(CONFIG, {"name": "ann", "kind": "user", "groups": ["stats"]}) is None
    assert refusal(CONFIG, {"name": "bo", "kind": "user", "groups": ["physics"]}) == (
        "bo may not use rstudio: it is open to the members of stats")
    assert refusal(CONFIG, {"name": "bo", "kind": "user"}) == (
        "the hub did not say which groups you are in")
    assert refusal(CONFIG, {"name": "cron", "kind": "service"}) == (
        "cron is a service, not a hub user")
    everyone = GateConfig(**{**CONFIG.__dict__, "groups": frozenset()})
    assert refusal(everyone, {"name": "bo", "kind": "user"}) is None


def test_upstream_headers() -> None:
    incoming = request(Cookie="service-rstudio=TOKEN; rs=1; service-rstudio-oauth-state-x=s; "
                              "jupyterhub-session-id=S",
                       X_RStudio_Username="admin", X_Hubkeeper_User="admin",
                       X_Forwarded_For="203.0.113.9", X_Forwarded_Proto="https",
                       Connection="keep-alive", Accept="text/html")
    headers = upstream_headers(CONFIG, incoming, "ann", ["service-rstudio",
                                                         "jupyterhub-session-id"])
    assert headers["Cookie"] == "rs=1"  # the gate's login and the hub's session stay here
    assert headers.get_list("X-RStudio-Username") == ["ann"]  # the browser's copy is gone
    assert "X-Hubkeeper-User" not in headers
    assert headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-Host"] == "hub.example.edu"
    assert headers["X-Forwarded-Prefix"] == "/course/services/rstudio"
    assert "Connection" not in headers and "Host" not in headers
    assert headers["Accept"] == "text/html"
    ws = upstream_headers(CONFIG, request(Sec_WebSocket_Key="k", Sec_WebSocket_Protocol="p"),
                          "ann", [], websocket_request=True)
    assert not [key for key in ws if key.lower().startswith("sec-websocket")]


def test_paths_redirects_and_cookies_map_to_the_prefix() -> None:
    assert upstream_path(CONFIG, "/course/services/rstudio/a%20b/c?d=1") == "/a%20b/c?d=1"
    assert upstream_path(CONFIG, "/course/services/rstudio/") == "/"
    assert rewrite_location(CONFIG, "http://127.0.0.1:8787/auth?x=1") == (
        "/course/services/rstudio/auth?x=1")
    assert rewrite_location(CONFIG, "/auth") == "/course/services/rstudio/auth"
    assert rewrite_location(CONFIG, "/course/services/rstudio/auth") == (
        "/course/services/rstudio/auth")  # the upstream knows its prefix (www-root-path)
    assert rewrite_location(CONFIG, "https://cran.r-project.org/") == (
        "https://cran.r-project.org/")
    assert rewrite_location(CONFIG, "//evil.example/") == "//evil.example/"
    assert rewrite_set_cookie(CONFIG, "rs=1; Path=/; HttpOnly") == (
        "rs=1; Path=/course/services/rstudio/; HttpOnly")
    assert rewrite_set_cookie(CONFIG, "rs=1; path=/course/services/rstudio/s") == (
        "rs=1; path=/course/services/rstudio/s")
    assert rewrite_set_cookie(CONFIG, "rs=1; HttpOnly") == "rs=1; HttpOnly"


def test_cross_site_requests_are_refused() -> None:
    assert cross_site(request("POST", Sec_Fetch_Site="same-origin")) is None
    assert cross_site(request("POST", Sec_Fetch_Site="cross-site",
                              Origin="https://evil.example")) == (
        "a POST from another site (https://evil.example) is not passed on")
    assert cross_site(request("PUT", Sec_Fetch_Site="same-site")) is not None
    assert cross_site(request("POST", Origin="https://hub.example.edu")) is None
    assert cross_site(request("POST", Origin="https://evil.example")) is not None
    assert cross_site(request("POST")) is None  # no browser page: no cookie-riding
    assert cross_site(request("GET", Sec_Fetch_Site="cross-site")) is None  # links work


HUB_ENV = {"JUPYTERHUB_SERVICE_NAME": "rstudio", "JUPYTERHUB_API_TOKEN": "T",
           "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:8788",
           "JUPYTERHUB_SERVICE_PREFIX": "/course/services/rstudio/", "JPY_API_TOKEN": "T",
           "PATH": "/usr/bin", "R_LIBS_SITE": "/srv/R"}


def test_gate_command_line_and_child_environment() -> None:
    config = read_config(["--upstream", "http://127.0.0.1:8787/", "--group", "stats",
                          "--user-header", "X-RStudio-Username", "--", "rserver", "--x"],
                         HUB_ENV)
    assert config == GateConfig(name="rstudio", prefix="/course/services/rstudio/",
                                host="127.0.0.1", port=8788, upstream="http://127.0.0.1:8787",
                                groups=frozenset({"stats"}), user_header="X-RStudio-Username",
                                command=("rserver", "--x"))
    env = child_environment(config, HUB_ENV)
    assert env == {"PATH": "/usr/bin", "R_LIBS_SITE": "/srv/R",
                   "HUBKEEPER_SERVICE_NAME": "rstudio",
                   "HUBKEEPER_SERVICE_PREFIX": "/course/services/rstudio/",
                   "HUBKEEPER_SERVICE_URL": "http://127.0.0.1:8787"}
    with pytest.raises(GateUsageError, match="JUPYTERHUB_API_TOKEN not set: the gate is "
                                             "started by the hub"):
        read_config(["--upstream", "http://127.0.0.1:8787"],
                    {k: v for k, v in HUB_ENV.items() if k != "JUPYTERHUB_API_TOKEN"})


def test_web_pages_run_as_their_own_account_and_every_user_may_log_in() -> None:
    """web.enabled: the `hubkeeper` service serves /services/hubkeeper/ (proc/webpage.py)
    as hkweb-<hub>, never root, asking the root helper at <state>/web/helper.sock."""
    c = rendered(SERVICES + "web: {enabled: true, port: 8095}\n")
    (web,) = [s for s in c.JupyterHub.services if s["name"] == "hubkeeper"]
    assert web["name"] == "hubkeeper" and web["api_token"] == "SERVICE"
    # its token is its own (OAuth), apart from the API's, and no role gives it a scope
    assert c.JupyterHub.services[0] == {"name": "hubkeeper-api", "api_token": "API"}
    assert not [role for role in c.JupyterHub.load_roles if "hubkeeper" in role.get("services", [])]
    assert web["user"] == "hkweb-course" and web["user"] != "root"
    assert web["url"] == "http://127.0.0.1:8095"
    assert web["command"][-3:] == ["/opt/hk/bin/python", "-m", "hubkeeper.proc.webpage"]
    assert web["environment"]["HUBKEEPER_HELPER_SOCKET"] == \
        "/var/lib/hubkeeper/course/web/helper.sock"
    inputs = set(Service.class_trait_names(input=True))
    assert set(web) <= inputs, set(web) - inputs
    app = JupyterHub(config=c)
    assert "access:services!service=hubkeeper" in app.extra_user_scopes
    assert app.template_paths[0].endswith("hub/templates")
    # without web: no web service at all
    assert "hubkeeper" not in {s["name"] for s in rendered(SERVICES).JupyterHub.services}


def test_web_needs_system_mode_located(tmp_path: Path) -> None:
    from hubkeeper.config.rules.mode import mode_problems

    config = tmp_path / "hub.yaml"
    config.write_text("hub: {mode: personal}\nusers: {allowed: [ann]}\nweb:\n  enabled: true\n")
    (problem,) = [p for p in mode_problems(load(config), is_root=False)
                  if p.field == "web.enabled"]
    assert (problem.file, problem.line) == (str(config), 4)
    assert "needs system mode" in problem.message


def test_restored_beside_names_and_reserved_web_accounts() -> None:
    from hubkeeper.lifecycle.restore import beside_name
    from hubkeeper.roster.policy import name_problem
    from hubkeeper.state.identity import web_account

    assert beside_name("week1.ipynb", "2026-12-06") == "week1 (restored 2026-12-06).ipynb"
    assert beside_name("data", "2026-12-06") == "data (restored 2026-12-06)"
    assert beside_name(".bashrc", "2026-12-06") == ".bashrc (restored 2026-12-06)"
    assert web_account("physics") == "hkweb-physics"
    assert len(web_account("a" * 63)) <= 32
    assert "reserved" in (name_problem(web_account("physics")) or "")
    assert "reserved" in (name_problem("hubkeeper-web") or "")  # its journal record's user
