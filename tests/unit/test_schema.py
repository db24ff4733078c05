"""hub.yaml validation: every error names file:line:column, the field and what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubkeeper.base.errors import InvalidInput
from hubkeeper.config import load, parse
from hubkeeper.config.model import HubSpec
from hubkeeper.verbs.init import init

REPO = Path(__file__).resolve().parents[2]
CB = "https://hub.example.org/hub/oauth_callback"


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse(text, "hub.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_demo_example_loads() -> None:
    loaded = load(REPO / "examples" / "demo" / "hub.yaml")
    assert loaded.spec.hub.name == "demo"
    assert loaded.spec.hub.mode == "personal"
    assert loaded.spec.users.admins == ["instructor"]
    assert loaded.spec.users.allowed == ["student1", "student2", "student3"]


def test_starter_from_init_loads(tmp_path: Path) -> None:
    result = init(tmp_path / "Physics 101")
    spec = load(result.path).spec
    assert spec.hub.name == "physics-101"
    assert spec.auth.kind is None  # the default follows the mode: pam or shared-password


def test_empty_file_is_all_defaults_but_nobody_may_log_in() -> None:
    assert problems_of("") == [
        "hub.yaml:1:1: users: nobody could log in: list names under users.allowed or "
        "users.admins, give a users.roster, or set users.allow_all: true"
    ]


def test_defaults() -> None:
    spec = parse("users: {allowed: [ada]}")
    assert spec == HubSpec.model_validate({"users": {"allowed": ["ada"]}})
    assert (spec.hub.ip, spec.hub.port, spec.hub.base_url) == ("127.0.0.1", 8000, "/")
    assert spec.proxy.kind == "python"
    assert spec.backend == "local"


INVALID = [
    # (name, hub.yaml text, expected substring of the one problem, including file:line:col)
    ("misspelt top-level key", "hubb:\n  name: x\n",
     "hub.yaml:1:1: hubb: unknown key 'hubb'; did you mean 'hub'?"),
    ("misspelt nested key", "hub:\n  name: x\n  prot: 8000\nusers: {allowed: [a]}\n",
     "hub.yaml:3:3: hub.prot: unknown key 'prot'; did you mean 'port'? Valid keys here: "
     "api_port, base_url, extra_config, ip, mode, name, port, state_dir"),
    ("port too large", "hub:\n  port: 99999\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: hub.port: input should be less than or equal to 65535; got 99999"),
    ("port not a number", "hub:\n  port: eighty\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: hub.port: input should be a valid integer"),
    ("ip is a host name", "hub:\n  ip: localhost\nusers: {allowed: [a]}\n",
     "hub.yaml:2:7: hub.ip: 'localhost' is not an IP address; use 127.0.0.1"),
    ("base_url without slashes", "hub:\n  base_url: course\nusers: {allowed: [a]}\n",
     "hub.yaml:2:13: hub.base_url: 'course' must start and end with '/'"),
    ("hub name upper case", "hub:\n  name: Physics\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: hub.name: 'Physics' is not valid; use lower-case letters, digits and '-'"),
    ("unknown auth kind", "auth:\n  kind: kerberos\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: auth.kind: must be one of 'shared-password', 'pam', 'dummy', 'native', "
     "'github', 'oidc', 'ldap' or 'lti13'; got 'kerberos'"),
    ("unknown backend", "backend: nomad\nusers: {allowed: [a]}\n",
     "hub.yaml:1:10: backend: must be one of 'local', 'docker', 'slurm' or 'kubernetes'; "
     "got 'nomad'"),
    ("unknown mode", "hub:\n  mode: root\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: hub.mode: must be one of 'auto', 'system' or 'personal'; got 'root'"),
    ("user name with capital", "users:\n  allowed:\n    - ada\n    - Bob\n",
     "hub.yaml:4:7: users.allowed[1]: 'Bob' is not valid; use a lower-case Linux user name"),
    ("user name too long", "users:\n  allowed: [" + "a" * 33 + "]\n",
     "hub.yaml:2:13: users.allowed[0]: '" + "a" * 33 + "' is not valid"),
    ("user name with shell metacharacters", "users:\n  allowed: ['ada;rm -rf /']\n",
     "hub.yaml:2:13: users.allowed[0]: 'ada;rm -rf /' is not valid"),
    ("user name with leading dash", "users:\n  allowed: ['-ada']\n",
     "hub.yaml:2:13: users.allowed[0]: '-ada' is not valid"),
    ("duplicate user", "users:\n  allowed: [ada, bob, ada]\n",
     "hub.yaml:2:23: users.allowed[2]: 'ada' is listed twice (first at item 1)"),
    ("allowed is not a list", "users:\n  allowed: ada\n",
     "hub.yaml:2:12: users.allowed: must be a list"),
    ("section is not a mapping", "hub: 8000\nusers: {allowed: [a]}\n",
     "hub.yaml:1:6: hub: must be a mapping of keys; got 8000"),
    ("dummy auth on the network", "hub:\n  ip: 0.0.0.0\nauth:\n  kind: dummy\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:4:9: auth.kind: 'dummy' accepts any password, so it is only allowed when "
     "hub.ip is a loopback address"),
    ("password_file with pam", "auth:\n  kind: pam\n  password_file: pw\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:3:18: auth.password_file: only used with kind 'shared-password', not 'pam'"),
    ("two services on one port", "hub:\n  port: 8000\n  api_port: 8000\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:3:13: hub.api_port: port 8000 is already used by hub.port"),
    ("duplicate key", "hub:\n  port: 1\n  port: 2\n", "hub.yaml:3:3: not valid YAML"),
    ("broken YAML", "hub:\n  port: [8000\nusers: {}\n", "hub.yaml:3:"),
    ("top level is a list", "- hub\n- users\n",
     "hub.yaml:1:1: hub.yaml must be a mapping of sections"),
    ("unknown version", "version: 2\nusers: {allowed: [a]}\n",
     "hub.yaml:1:10: version: must be one of 1; got 2"),
    ("allow_all not a boolean", "users:\n  allow_all: maybe\n",
     "hub.yaml:2:14: users.allow_all: input should be a valid boolean"),
    ("secret in hub.yaml", "auth:\n  kind: shared-password\n  password: hunter22\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:3:3: auth.password: unknown key 'password'; did you mean 'password_file'?"),
    # auth.kind native
    ("native field with another kind", "auth:\n  kind: shared-password\n  open_signup: true\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:3:16: auth.open_signup: only used with kind 'native', not 'shared-password'; "
     "remove it"),
    ("native password length zero", "auth:\n  kind: native\n  minimum_password_length: 0\n"
     "users: {admins: [a]}\n",
     "hub.yaml:3:28: auth.minimum_password_length: input should be greater than or equal to "
     "1; got 0"),
    ("native and nobody to approve or sign in", "auth:\n  kind: native\n",
     "hub.yaml:1:1: users: nobody could log in"),
    ("misspelt native key", "auth:\n  kind: native\n  open_sign_up: true\nusers: {admins: [a]}\n",
     "hub.yaml:3:3: auth.open_sign_up: unknown key 'open_sign_up'; did you mean 'open_signup'?"),
    # auth.kind github
    ("github section with another kind", f"auth:\n  kind: pam\n  github:\n    callback_url: {CB}\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:4:5: auth.github: only used with kind 'github', not 'pam'; remove it"),
    ("github without its section", "auth:\n  kind: github\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: auth.kind: kind 'github' needs an auth.github section with at least "
     "callback_url"),
    ("github without callback_url", "auth:\n  kind: github\n  github:\n"
     "    organizations: [physics-dept]\n",
     "hub.yaml:4:5: auth.github: callback_url is required: the 'Authorization callback URL' "
     "of your GitHub OAuth app, e.g. https://hub.example.org/hub/oauth_callback"),
    ("callback_url over http", "auth:\n  kind: github\n  github:\n"
     "    callback_url: http://hub.example.org/hub/oauth_callback\nusers: {allowed: [a]}\n",
     "hub.yaml:4:19: auth.github.callback_url: 'http://hub.example.org/hub/oauth_callback' "
     "must start with https://"),
    ("callback_url is not the callback", "auth:\n  kind: github\n  github:\n"
     "    callback_url: https://hub.example.org/hub/login\nusers: {allowed: [a]}\n",
     "hub.yaml:4:19: auth.github.callback_url: 'https://hub.example.org/hub/login' must end "
     "with '/hub/oauth_callback'"),
    ("callback_url outside base_url", f"hub:\n  base_url: /physics/\nauth:\n  kind: github\n"
     f"  github:\n    callback_url: {CB}\nusers: {{allowed: [a]}}\n",
     "hub.yaml:6:19: auth.github.callback_url: the path must be '/physics/hub/oauth_callback' "
     "(hub.base_url '/physics/' followed by hub/oauth_callback), not '/hub/oauth_callback'"),
    ("organization with a space", f"auth:\n  kind: github\n  github:\n    callback_url: {CB}\n"
     "    organizations: [physics, 'physics dept']\n",
     "hub.yaml:5:30: auth.github.organizations[1]: 'physics dept' is not valid; use a GitHub "
     "organisation 'org' or a team 'org:team'"),
    ("team mapping without a team", f"auth:\n  kind: github\n  github:\n    callback_url: {CB}\n"
     "    organizations: [physics]\n    teams_to_groups:\n      physics: students\n",
     "hub.yaml:7:7: auth.github.teams_to_groups.physics (key): 'physics' is not valid; use a "
     "GitHub team 'org:team'"),
    ("team mapped to a bad group name", f"auth:\n  kind: github\n  github:\n"
     f"    callback_url: {CB}\n    organizations: [physics]\n    teams_to_groups:\n"
     "      'physics:tas': TAs\n",
     "hub.yaml:7:22: auth.github.teams_to_groups.physics:tas: 'TAs' is not valid; use a "
     "lower-case Linux user name"),
    ("team group is also a roster group", f"auth:\n  kind: github\n  github:\n"
     f"    callback_url: {CB}\n    teams_to_groups:\n      'physics:tas': tas\n"
     "users:\n  groups: {tas: [ann]}\n",
     "hub.yaml:6:22: auth.github.teams_to_groups.physics:tas: 'tas' is also a roster group"),
    ("github secret in hub.yaml", f"auth:\n  kind: github\n  github:\n    callback_url: {CB}\n"
     "    client_secret: abc\nusers: {allowed: [a]}\n",
     "hub.yaml:5:5: auth.github.client_secret: unknown key 'client_secret'"),
    # hooks and data
    ("hook without a script", "users: {allowed: [a]}\nhooks:\n  as_root:\n    - timeout: 5s\n",
     "hub.yaml:4:7: hooks.as_root[0].script: field required"),
    ("misspelt hook key", "users: {allowed: [a]}\nhooks:\n  as_user:\n"
     "    - {script: a.sh, timout: 5s}\n",
     "hub.yaml:4:22: hooks.as_user[0].timout: unknown key 'timout'; did you mean 'timeout'? "
     "Valid keys here: script, timeout"),
    ("hook timeout without unit word", "users: {allowed: [a]}\nhooks:\n  as_root:\n"
     "    - script: a.sh\n      timeout: 5 minutes\n",
     "hub.yaml:5:16: hooks.as_root[0].timeout: '5 minutes' is not a duration; use a number "
     "and a unit s, m or h, e.g. 30s, 5m or 1m30s"),
    ("hook timeout zero", "users: {allowed: [a]}\nhooks:\n  as_root:\n"
     "    - {script: a.sh, timeout: 0s}\n",
     "hub.yaml:4:31: hooks.as_root[0].timeout: '0s' must be more than 0s and at most 1h"),
    ("hook timeout too long", "users: {allowed: [a]}\nhooks:\n  as_root:\n"
     "    - {script: a.sh, timeout: 2h}\n",
     "hub.yaml:4:31: hooks.as_root[0].timeout: '2h' must be more than 0s and at most 1h"),
    ("hooks as a list", "users: {allowed: [a]}\nhooks: [a.sh]\n",
     "hub.yaml:2:8: hooks: must be a mapping of keys"),
    ("hook list of strings", "users: {allowed: [a]}\nhooks:\n  as_user: [a.sh]\n",
     "hub.yaml:3:13: hooks.as_user[0]: must be a mapping of keys; got 'a.sh'"),
    ("unknown on_failure", "users: {allowed: [a]}\nhooks: {on_failure: ignore}\n",
     "hub.yaml:2:21: hooks.on_failure: must be one of 'fail' or 'warn'; got 'ignore'"),
    ("size with unknown unit", "users: {allowed: [a]}\ndata:\n  min_free: 1X\n",
     "hub.yaml:3:13: data.min_free: '1X' is not a size; use a number and a unit K, M, G or T "
     "(powers of 1024), e.g. 500M or 1G; 0 turns the check off"),
    ("negative size", "users: {allowed: [a]}\ndata:\n  min_free: -5G\n",
     "hub.yaml:3:13: data.min_free: '-5G' is not a size"),
    ("size as a boolean", "users: {allowed: [a]}\ndata:\n  min_free: true\n",
     "hub.yaml:3:13: data.min_free: True is not a size"),
    ("misspelt data key", "users: {allowed: [a]}\ndata:\n  minfree: 1G\n",
     "hub.yaml:3:3: data.minfree: unknown key 'minfree'; did you mean 'min_free'?"),
    ("allow_all with organizations", f"auth:\n  kind: github\n  github:\n    callback_url: {CB}\n"
     "    organizations: [physics]\nusers:\n  allow_all: true\n",
     "hub.yaml:7:14: users.allow_all: with kind 'github' this lets every GitHub account in, so "
     "auth.github.organizations would have no effect"),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_hub_yaml_is_reported_at_its_line(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_every_problem_is_reported_at_once() -> None:
    text = "hub:\n  prot: 1\n  ip: nowhere\nauth:\n  kind: kerberos\nusers:\n  allowed: [Ada]\n"
    lines = [problem.split(":")[1] for problem in problems_of(text)]
    assert lines == ["2", "3", "5", "7"]


def test_missing_file_names_it_and_hints_at_init(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        load(tmp_path / "hub.yaml")
    assert str(caught.value.problems[0]) == f"{tmp_path / 'hub.yaml'}: no such file"
    assert "hubkeeper init" in (caught.value.hint or "")


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(InvalidInput) as caught:
        load(path)
    assert "not UTF-8" in str(caught.value.problems[0])


def test_native_and_github_sections_load() -> None:
    native = parse("auth:\n  kind: native\n  open_signup: true\n  minimum_password_length: 12\n")
    assert (native.auth.kind, native.auth.open_signup) == ("native", True)
    assert native.auth.minimum_password_length == 12
    assert native.auth.check_common_password is True
    github = parse(
        "hub: {base_url: /physics/}\n"
        "auth:\n"
        "  kind: github\n"
        "  github:\n"
        "    callback_url: https://hub.example.org/physics/hub/oauth_callback\n"
        "    organizations: [physics-dept:tas, Chem-Dept]\n"  # unquoted org:team is fine
        "    teams_to_groups:\n"
        "      physics-dept:tas: tas\n"
    )
    assert github.auth.github.organizations == ["physics-dept:tas", "Chem-Dept"]
    assert github.auth.github.teams_to_groups == {"physics-dept:tas": "tas"}
    # a callback on this machine may use http (GitHub allows it for development)
    parse("auth:\n  kind: github\n  github:\n"
          "    callback_url: http://127.0.0.1:8000/hub/oauth_callback\nusers: {admins: [a]}\n")


def test_a_section_with_only_comments_means_its_defaults() -> None:
    spec = parse("auth:\n  # kind: pam\nusers: {allowed: [ada]}\n")
    assert spec.auth.kind is None


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
                                               ("1m30s", 90.0), ("2.5s", 2.5), ("45", 45.0)])
def test_durations(text: str, seconds: float) -> None:
    spec = parse(f"users: {{allowed: [a]}}\nhooks: {{as_root: [{{script: a, timeout: "
                 f"{text}}}]}}")
    assert spec.hooks.as_root[0].timeout == seconds


@pytest.mark.parametrize(("text", "size"), [("1G", 1024**3), ("500M", 500 * 1024**2),
                                            ("2T", 2 * 1024**4), ("1.5K", 1536), ("0", 0),
                                            ("4096", 4096), ("1GiB", 1024**3), ("1gb", 1024**3)])
def test_sizes(text: str, size: int) -> None:
    assert parse(f"users: {{allowed: [a]}}\ndata: {{min_free: {text}}}").data.min_free == size


def test_hook_and_data_defaults() -> None:
    spec = parse("users: {allowed: [a]}\nhooks:\n  as_user: [{script: a.sh}]\n")
    assert spec.hooks.as_user[0].timeout == 30.0
    assert spec.hooks.on_failure == "fail"
    assert spec.hooks.log_dir is None
    assert spec.data.min_free == 1024**3


ENVS_USERS = "users: {allowed: [ada], groups: {lab: [ada]}}\n"


def test_environments_parse() -> None:
    spec = parse(ENVS_USERS + "environments:\n  base: {packages: [tabulate], default: true}\n"
                 "  lab-2: {packages: ['toolz>=1'], groups: [lab], home_template: t,"
                 " requirements: r.txt}\n")
    assert spec.environments["lab-2"].packages == ["toolz>=1"]
    assert spec.environments["lab-2"].groups == ["lab"]
    from hubkeeper.config.model import default_environment
    assert default_environment(spec) == "base"


def test_an_r_environment_parses_and_only_its_lists_change_the_build() -> None:
    from hubkeeper.host import envs, renv

    spec = parse(ENVS_USERS + "environments:\n  stats: {r: {packages: [jsonlite, "
                 "data.table], cran: [hkdemo]}}\n")
    r = spec.environments["stats"].r
    assert r is not None and r.cran_repository == "https://cloud.r-project.org"
    source = renv.RSource(tuple(r.packages), tuple(r.cran), r.cran_repository)
    assert renv.debian_names(source) == ["r-base-core", "r-cran-irkernel", "r-cran-jsonlite",
                                         "r-cran-data.table"]
    python_only = envs.EnvSource("stats", (), None)
    with_r = envs.EnvSource("stats", (), None, source)
    assert "r" not in parse(ENVS_USERS + "environments:\n  a: {}\n").environments["a"] \
        .model_fields_set
    hashes = {envs.content_hash(python_only), envs.content_hash(with_r),
              envs.content_hash(envs.EnvSource("stats", (), None, renv.RSource(
                  ("jsonlite",), ("hkdemo",), r.cran_repository)))}
    assert len(hashes) == 3


@pytest.mark.parametrize(("text", "expected"), [
    ("environments:\n  a: {default: true}\n  b: {default: true}\n",
     "hub.yaml:4:16: environments.b.default: 'a' is already the default environment; only "
     "one may be"),
    ("environments:\n  a: {}\n  b: {}\n",
     "hub.yaml:3:3: environments: with several environments (a, b) one needs "
     "'default: true'"),
    ("environments:\n  My Env: {}\n",
     "hub.yaml:3:3: environments.My Env (key): 'My Env' is not valid; use a lower-case slug"),
    ("environments:\n  a: {packages: [tabulate], group: [lab]}\n",
     "hub.yaml:3:29: environments.a.group: unknown key 'group'"),
    # servers: and environments.<name>.env/ui: reserved names, names, values, UIs
    ("servers:\n  env: {JUPYTERHUB_API_URL: x}\n",
     "hub.yaml:3:9: servers.env.JUPYTERHUB_API_URL (key): 'JUPYTERHUB_API_URL' is reserved: "
     "JupyterHub sets the JUPYTERHUB_* variables"),
    ("servers:\n  env:\n    MEM_LIMIT: 4G\n",
     "hub.yaml:4:5: servers.env.MEM_LIMIT (key): 'MEM_LIMIT' is reserved: the spawner sets "
     "it from limits:; choose another name"),
    ("servers:\n  groups: {lab: {env: {HOME: /tmp}}}\n",
     "hub.yaml:3:24: servers.groups.lab.env.HOME (key): 'HOME' is reserved: the spawner sets "
     "it from the user's account"),
    ("environments:\n  r: {env: {PATH: /opt/r/bin}}\n",
     "hub.yaml:3:13: environments.r.env.PATH (key): 'PATH' is reserved: the spawner passes "
     "the hub's own value on (env_keep)"),
    ("environments:\n  r: {env: {HUBKEEPER_USER: x}}\n",
     "hub.yaml:3:13: environments.r.env.HUBKEEPER_USER (key): 'HUBKEEPER_USER' is reserved"),
    ("servers:\n  env: {LD_PRELOAD: /home/ada/evil.so}\n",
     "hub.yaml:3:9: servers.env.LD_PRELOAD (key): 'LD_PRELOAD' is reserved: glibc and the "
     "dynamic loader read it in every program, and on backend slurm root runs runuser"),
    ("environments:\n  r: {env: {GCONV_PATH: /home/ada/gconv}}\n",
     "hub.yaml:3:13: environments.r.env.GCONV_PATH (key): 'GCONV_PATH' is reserved: glibc"),
    ("servers:\n  env: {2FAST: x}\n",
     "hub.yaml:3:9: servers.env.2FAST (key): '2FAST' is not an environment variable name; "
     "use letters, digits and _"),
    ("servers:\n  env: {OMP_NUM_THREADS: 1}\n",
     "hub.yaml:3:26: servers.env.OMP_NUM_THREADS: must be a string; got 1: write it in "
     "quotes ('1')"),
    ("servers:\n  warm_kernels: sometimes\n",
     "hub.yaml:3:17: servers.warm_kernels: input should be a valid boolean, true or false; "
     "got 'sometimes'"),
    ("servers:\n  ui: classic\n",
     "hub.yaml:3:7: servers.ui: 'classic' is not a UI; use lab, notebook, or a path in the "
     "server starting with /"),
    ("environments:\n  r: {ui: /voila/../../etc}\n",
     "hub.yaml:3:11: environments.r.ui: '/voila/../../etc' is not a path in the server"),
    ("environments:\n  r: {ui: '/x/{username}'}\n",
     "hub.yaml:3:11: environments.r.ui: '/x/{username}' is not a path in the server"),
    ("environments:\n  a: {r: {packages: [jsonlite, json_lite]}}\n",
     "hub.yaml:3:32: environments.a.r.packages[1]: 'json_lite' is not an R package name: "
     "letters, digits and '.', starting with a letter (e.g. jsonlite, data.table); the "
     "Debian package is r-cran-<name in lower case>"),
    ("environments:\n  a: {r: {cran: [ggplot2], cran_repository: 'cran.r-project.org'}}\n",
     "hub.yaml:3:45: environments.a.r.cran_repository: 'cran.r-project.org' is not a CRAN "
     "repository URL; write e.g. https://cloud.r-project.org or file:///srv/cran"),
    ("environments:\n  a: {r: {cran: ['2fast']}}\n",
     "hub.yaml:3:18: environments.a.r.cran[0]: '2fast' is not an R package name"),
])
def test_environment_errors(text: str, expected: str) -> None:
    problems = problems_of(ENVS_USERS + text)
    assert len(problems) == 1
    assert problems[0].startswith(expected), problems[0]


def test_environment_groups_and_files_are_checked_against_roster_and_disk(
        tmp_path: Path) -> None:
    from hubkeeper.config.rules.roster import environment_group_problems
    from hubkeeper.host.preflight import environment_file_problems
    from hubkeeper.roster import build_roster

    (tmp_path / "hub.yaml").write_text(
        ENVS_USERS + "environments:\n"
        "  a: {groups: [lab, nope], requirements: missing.txt, home_template: nodir}\n")
    loaded = load(tmp_path / "hub.yaml")
    problems = [str(p) for p in environment_group_problems(loaded, build_roster(loaded).groups)
                + environment_file_problems(loaded)]
    hub = tmp_path / "hub.yaml"
    assert problems == [
        f"{hub}:3:21: environments.a.groups[1]: 'nope' is not a roster group (roster "
        "groups: lab)",
        f"{hub}:3:42: environments.a.requirements: no such file: {tmp_path}/missing.txt",
        f"{hub}:3:70: environments.a.home_template: no such directory: {tmp_path}/nodir",
    ]


def test_servers_variables_and_ui_parse() -> None:
    spec = parse(ENVS_USERS + "servers:\n  ui: /voila/render/intro.ipynb\n"
                 "  env: {NLTK_DATA: /srv/nltk_data, OMP_NUM_THREADS: '1'}\n"
                 "  groups: {lab: {env: {NLTK_DATA: /srv/lab}}}\n"
                 "environments:\n  r: {ui: notebook, env: {R_LIBS_SITE: /srv/r}}\n")
    assert spec.servers.ui == "/voila/render/intro.ipynb"
    assert spec.servers.env == {"NLTK_DATA": "/srv/nltk_data", "OMP_NUM_THREADS": "1"}
    assert spec.servers.groups["lab"].env == {"NLTK_DATA": "/srv/lab"}
    assert (spec.environments["r"].ui, spec.environments["r"].env) == (
        "notebook", {"R_LIBS_SITE": "/srv/r"})
    assert parse(ENVS_USERS).servers.ui == "lab"


def test_apply_with_a_reserved_variable_changes_nothing(tmp_path: Path) -> None:
    from tests.unit.test_cli import refused

    stderr = refused(tmp_path, ENVS_USERS + "servers:\n  env: {CPU_LIMIT: '8'}\n", "apply")
    assert ("<hub.yaml>:4:9: servers.env.CPU_LIMIT (key): 'CPU_LIMIT' is reserved: the "
            "spawner sets it from limits:; choose another name") in stderr
