"""auth.kind ldap: hub.yaml's auth.ldap (problems at their lines), its rendering into
jupyterhub-ldapauthenticator's traits, and the identity a login carries. The real slapd is
in tests/component/test_auth_ldap_hub.py."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

from hubkeeper.base.errors import InvalidInput
from hubkeeper.config import parse
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.context.runtime import Runtime
from hubkeeper.hub.auth import ProviderIdentity
from hubkeeper.hub.auth_ldap import LDAPAuthenticator, normal_dn
from hubkeeper.render.jupyterhub import as_python, render
from hubkeeper.roster import build_roster
from hubkeeper.state.statedir import Secrets
from tests.unit.test_render import SECRETS, STATE

PEOPLE = "uid={username},ou=people,dc=example,dc=org"
STUDENTS = "cn=students,ou=groups,dc=example,dc=org"
TAS = "cn=tas,ou=groups,dc=example,dc=org"

OPENLDAP = f"""\
hub: {{name: course}}
auth:
  kind: ldap
  ldap:
    server: ldap://ldap.example.org
    bind_dn_template: ['{PEOPLE}']
    allowed_groups: ['{STUDENTS}']
    groups: {{'{TAS}': tas}}
    admin_groups: ['{TAS}']
users:
  accounts: first_login
  admins: [prof]
"""

ACTIVE_DIRECTORY = """\
auth:
  kind: ldap
  ldap:
    server: ldaps://dc1.ad.example.org
    ca_file: /etc/ssl/ad-ca.pem
    user_search_base: 'ou=Staff,dc=ad,dc=example,dc=org'
    user_attribute: sAMAccountName
    lookup_dn_search_user: 'cn=hub-search,ou=Service,dc=ad,dc=example,dc=org'
    allowed_groups: ['CN=Students,OU=Groups,DC=ad,DC=example,DC=org']
users:
  accounts: first_login
"""


def rendered(text: str, mode: str = "system", secrets: Secrets = SECRETS):
    spec = parse(text)
    roster = build_roster(LoadedSpec(spec, Path("/srv/course/hub.yaml")))
    return render(spec, Runtime(mode=mode, state=STATE, secrets=secrets,  # type: ignore[arg-type]
                                proxy_command=("p",), singleuser_command=("s",),
                                as_root=True, roster=roster, config_dir=Path("/srv/course")))


def test_openldap_with_a_bind_template() -> None:
    c = rendered(OPENLDAP)
    assert c.JupyterHub.authenticator_class == "hubkeeper.hub.auth_ldap.LDAPAuthenticator"
    ldap = c.LDAPAuthenticator
    assert (ldap.server_address, ldap.server_port) == ("ldap.example.org", 389)
    assert ldap.tls_strategy == "before_bind"  # ldap:// is upgraded by StartTLS by default
    assert ldap.tls_kwargs == {"validate": int(ssl.CERT_REQUIRED)}
    assert ldap.bind_dn_template == [PEOPLE]
    assert ldap.allowed_groups == [STUDENTS]
    assert ldap.allow_existing_users is False
    assert "lookup_dn" not in ldap and "lookup_dn_search_password" not in ldap
    assert c.HubkeeperAuthenticator.journal_path == "/var/lib/hubkeeper/course/journal.json"
    assert c.Authenticator.admin_users == {"prof"}


def test_active_directory_with_a_search_account() -> None:
    secrets = dataclasses.replace(SECRETS, ldap_bind_password="BINDPW")
    c = rendered(ACTIVE_DIRECTORY, secrets=secrets)
    ldap = c.LDAPAuthenticator
    assert (ldap.server_address, ldap.server_port) == ("dc1.ad.example.org", 636)
    assert ldap.tls_strategy == "on_connect"
    assert ldap.tls_kwargs == {"validate": int(ssl.CERT_REQUIRED),
                               "ca_certs_file": "/etc/ssl/ad-ca.pem"}
    assert ldap.lookup_dn is True
    assert ldap.user_search_base == "ou=Staff,dc=ad,dc=example,dc=org"
    assert ldap.user_attribute == ldap.lookup_dn_user_dn_attribute == "sAMAccountName"
    assert ldap.use_lookup_dn_username is False
    assert ldap.lookup_dn_search_user == "cn=hub-search,ou=Service,dc=ad,dc=example,dc=org"
    assert ldap.lookup_dn_search_password == "BINDPW"
    assert "bind_dn_template" not in ldap


def test_the_bind_password_is_redacted_and_plain_ldap_to_this_machine_verifies_nothing() -> None:
    c = rendered(ACTIVE_DIRECTORY, secrets=Secrets.redacted(STATE))
    assert c.LDAPAuthenticator.lookup_dn_search_password == "<redacted>"
    local = rendered(OPENLDAP.replace("ldap://ldap.example.org",
                                      "ldap://127.0.0.1:3389\n    tls: none"), mode="personal")
    assert local.LDAPAuthenticator.server_port == 3389
    assert local.LDAPAuthenticator.tls_strategy == "insecure"
    assert "tls_kwargs" not in local.LDAPAuthenticator
    assert "journal_path" not in local.HubkeeperAuthenticator  # personal mode
    compile(as_python(local), "jupyterhub_config.py", "exec")


def test_the_rendered_traits_are_accepted_by_ldapauthenticator() -> None:
    """The Config rendered for both shapes builds the real class without a trait error."""
    for text in (OPENLDAP, ACTIVE_DIRECTORY):
        authenticator = LDAPAuthenticator(config=rendered(text))
        assert authenticator.tls_strategy.name in ("before_bind", "on_connect")


def test_the_search_account_password_is_read_from_the_state_dir(tmp_path: Path) -> None:
    from hubkeeper.base.errors import HubkeeperError
    from hubkeeper.state.statedir import StatePaths, read_ldap_bind_password

    paths = StatePaths(tmp_path)
    with pytest.raises(HubkeeperError, match="ldap-bind-password is missing"):
        read_ldap_bind_password(paths)
    paths.secrets.mkdir()
    secret = paths.secret("ldap-bind-password")
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(HubkeeperError, match="readable by other users"):
        read_ldap_bind_password(paths)
    secret.chmod(0o600)
    assert read_ldap_bind_password(paths) == "s3cret"


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse(text, "hub.yaml")
    return [str(problem) for problem in caught.value.problems]


def ldap_yaml(*lines: str, users: str = "users: {allowed: [ann]}\n") -> str:
    return "auth:\n  kind: ldap\n  ldap:\n" + "".join(f"    {line}\n" for line in lines) + users


SERVER = "server: ldaps://ldap.example.org"
TEMPLATE = f"bind_dn_template: ['{PEOPLE}']"

INVALID = [
    ("ldap section with another kind",
     "auth:\n  kind: pam\n  ldap:\n    server: ldap://x\nusers: {allowed: [a]}\n",
     "hub.yaml:4:5: auth.ldap: only used with kind 'ldap', not 'pam'; remove it"),
    ("ldap without its section", "auth:\n  kind: ldap\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: auth.kind: kind 'ldap' needs an auth.ldap section with at least server"),
    ("no server", ldap_yaml(TEMPLATE),
     "hub.yaml:4:5: auth.ldap: server is required"),
    ("server is a web address", ldap_yaml("server: https://ldap.example.org", TEMPLATE),
     "hub.yaml:4:13: auth.ldap.server: 'https://ldap.example.org' is not an LDAP address"),
    ("server with a search base", ldap_yaml("server: ldap://ldap.example.org/dc=org", TEMPLATE),
     "hub.yaml:4:13: auth.ldap.server: 'ldap://ldap.example.org/dc=org' must be only the "
     "scheme, host and port"),
    ("plain ldap over the network", ldap_yaml("server: ldap://ldap.example.org", "tls: none",
                                              TEMPLATE),
     "hub.yaml:5:10: auth.ldap.tls: none would send every password to ldap.example.org in "
     "the clear"),
    ("ldaps address with starttls", ldap_yaml(SERVER, "tls: starttls", TEMPLATE),
     "hub.yaml:5:10: auth.ldap.tls: 'ldaps://ldap.example.org' is TLS from the start"),
    ("tls ldaps with an ldap address", ldap_yaml("server: ldap://ldap.example.org",
                                                 "tls: ldaps", TEMPLATE),
     "hub.yaml:5:10: auth.ldap.tls: ldaps needs an ldaps:// server address"),
    ("unknown tls", ldap_yaml(SERVER, "tls: ssl", TEMPLATE),
     "hub.yaml:5:10: auth.ldap.tls: "),
    ("relative ca_file", ldap_yaml(SERVER, "ca_file: ca.pem", TEMPLATE),
     "hub.yaml:5:14: auth.ldap.ca_file: 'ca.pem' must be an absolute path"),
    ("ca_file without tls", ldap_yaml("server: ldap://127.0.0.1", "tls: none",
                                      "ca_file: /etc/ca.pem", TEMPLATE),
     "hub.yaml:6:14: auth.ldap.ca_file: only used with tls starttls or ldaps"),
    ("neither template nor search", ldap_yaml(SERVER),
     "hub.yaml:4:5: auth.ldap: say how a login name finds its entry"),
    ("template and search", ldap_yaml(SERVER, TEMPLATE, "user_search_base: dc=example,dc=org"),
     "hub.yaml:6:23: auth.ldap.user_search_base: give either bind_dn_template"),
    ("template without {username}", ldap_yaml(SERVER, "bind_dn_template: ['uid=ann,dc=org']"),
     "hub.yaml:5:24: auth.ldap.bind_dn_template[0]: 'uid=ann,dc=org' must hold {username}"),
    ("template with another field", ldap_yaml(SERVER,
                                              "bind_dn_template: ['uid={user},dc=org']"),
     "hub.yaml:5:24: auth.ldap.bind_dn_template[0]: 'uid={user},dc=org' may hold only "
     "{username}"),
    ("template that is no DN", ldap_yaml(SERVER, "bind_dn_template: ['{username}']"),
     "hub.yaml:5:24: auth.ldap.bind_dn_template[0]: '{username}' is not a DN"),
    ("search base that is no DN", ldap_yaml(SERVER, "user_search_base: people"),
     "hub.yaml:5:23: auth.ldap.user_search_base: 'people' is not a DN"),
    ("search user without a search", ldap_yaml(SERVER, TEMPLATE,
                                               "lookup_dn_search_user: cn=x,dc=org"),
     "hub.yaml:6:28: auth.ldap.lookup_dn_search_user: only used with user_search_base"),
    ("bad attribute", ldap_yaml(SERVER, "user_search_base: dc=org", "user_attribute: 'a b'"),
     "hub.yaml:6:21: auth.ldap.user_attribute: "),
    ("allowed group that is no DN", ldap_yaml(SERVER, TEMPLATE, "allowed_groups: [students]"),
     "hub.yaml:6:22: auth.ldap.allowed_groups[0]: 'students' is not a group's DN"),
    ("admin group that is no DN", ldap_yaml(SERVER, TEMPLATE, "admin_groups: [tas]"),
     "hub.yaml:6:20: auth.ldap.admin_groups[0]: 'tas' is not a group's DN"),
    ("mapped group that is no DN", ldap_yaml(SERVER, TEMPLATE, "groups: {tas: tas}"),
     "hub.yaml:6:19: auth.ldap.groups.tas: 'tas' is not a group's DN"),
    ("bind password in hub.yaml", ldap_yaml(SERVER, TEMPLATE, "bind_password: x"),
     "hub.yaml:6:5: auth.ldap.bind_password: unknown key 'bind_password'"),
    ("first_login without allowed_groups",
     ldap_yaml(SERVER, TEMPLATE, users="users: {accounts: first_login, allowed: [ann]}\n"),
     "hub.yaml:6:19: users.accounts: with first_login everyone in the directory could make "
     "themselves an account here"),
    ("allow_all with allowed_groups",
     ldap_yaml(SERVER, TEMPLATE, f"allowed_groups: ['{STUDENTS}']",
               users="users: {allow_all: true}\n"),
     "hub.yaml:7:20: users.allow_all: with kind 'ldap' this lets everyone in the directory in"),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_auth_ldap_is_reported_at_its_line(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_valid_shapes_load() -> None:
    parse(OPENLDAP)
    parse(ACTIVE_DIRECTORY)
    # plain LDAP to this machine; allowed_groups alone is enough for someone to log in
    parse(ldap_yaml("server: ldap://localhost:3389", "tls: none", TEMPLATE,
                    f"allowed_groups: ['{STUDENTS}']", users=""))
    # first_login admitting everyone in the directory, explicitly
    parse(ldap_yaml(SERVER, TEMPLATE, users="users: {accounts: first_login, allow_all: true}\n"))


def test_normal_dn_ignores_case_and_spaces() -> None:
    assert normal_dn("CN=Students, OU=Groups,DC=Example,DC=org") == normal_dn(STUDENTS)
    assert normal_dn(STUDENTS) != normal_dn(TAS)


def authenticator() -> LDAPAuthenticator:
    return LDAPAuthenticator(server_address="ldap.example.org", bind_dn_template=[PEOPLE],
                             allowed_groups=[STUDENTS], group_map={TAS: "tas"},
                             provider_admin_groups=[TAS.upper()])


def model(attributes: dict, ldap_groups: list[str] | None = None) -> dict:
    return {"name": "ann", "auth_state": {"ldap_groups": ldap_groups or [],
                                          "user_attributes": attributes}}


def test_the_subject_is_the_entrys_stable_id_else_its_dn() -> None:
    auth = authenticator()
    dn = "uid=ann,ou=people,dc=example,dc=org"
    uuid = "3be71ca8-8655-1041-9a6a-fbfc9f9f8295"
    both = {"dn": dn, "entryUUID": [uuid], "uidNumber": [20001]}
    assert auth.provider_identity(model(both)).subject == f"ldap:{uuid}"
    guid = "{c0ffee00-0000-4000-8000-000000000001}"
    assert auth.provider_identity(model({"dn": dn, "objectGUID": [guid]})).subject == \
        f"ldap:{guid}"
    assert auth.provider_identity(model({"dn": dn, "uidNumber": [20001]})).subject == \
        "ldap:20001"
    assert auth.provider_identity(model({"dn": dn})).subject == f"ldap:{dn}"
    assert auth.provider_identity({"name": "ann", "auth_state": None}) is None


def test_groups_are_reported_in_each_of_hub_yamls_spellings() -> None:
    auth = authenticator()
    identity = auth.provider_identity(model(
        {"dn": "uid=tim,ou=people,dc=example,dc=org",
         "hubkeeper_groups": [STUDENTS, "cn=TAs, ou=groups, dc=example, dc=org"]},
        ldap_groups=[STUDENTS]))
    assert identity == ProviderIdentity(
        "ldap", "ldap:uid=tim,ou=people,dc=example,dc=org",
        frozenset({STUDENTS, TAS, TAS.upper()}))


def test_active_directory_entries_through_ldap3s_mock_of_its_schema() -> None:
    """No Active Directory runs here: ldap3's own offline AD schema and mock strategy stand
    in for the server. AD has no entryUUID (asking for it would be an error in ldap3): the
    subject is objectGUID; membership comes from memberOf (spelt otherwise than hub.yaml)
    and from the group's member list."""
    import uuid

    import ldap3

    user_dn = "CN=Ann Smith,OU=Staff,DC=ad,DC=example,DC=org"
    students = "CN=PHYS101 Students,OU=Groups,DC=ad,DC=example,DC=org"
    tas = "cn=phys101 tas, ou=groups, dc=ad, dc=example, dc=org"
    server = ldap3.Server("dc1.ad.example.org", get_info=ldap3.OFFLINE_AD_2012_R2)
    conn = ldap3.Connection(server, user="CN=admin,DC=ad,DC=example,DC=org", password="x",
                            client_strategy=ldap3.MOCK_SYNC)
    guid = uuid.uuid4()
    conn.strategy.add_entry(user_dn, {
        "objectClass": ["top", "person", "user"], "sAMAccountName": "ann",
        "objectGUID": guid.bytes_le,
        "memberOf": ["CN=PHYS101 TAs,OU=Groups,DC=ad,DC=example,DC=org",
                     "CN=Other,OU=Groups,DC=ad,DC=example,DC=org"]})
    conn.strategy.add_entry(students, {"objectClass": ["top", "group"], "member": [user_dn]})
    conn.strategy.add_entry("CN=Staff Only,OU=Groups,DC=ad,DC=example,DC=org",
                            {"objectClass": ["top", "group"], "member": ["CN=x,DC=ad"]})
    conn.bind()
    auth = LDAPAuthenticator(
        server_address="dc1.ad.example.org", bind_dn_template=["CN={username},DC=ad"],
        allowed_groups=[students], group_map={tas: "tas"},
        provider_admin_groups=["CN=Staff Only,OU=Groups,DC=ad,DC=example,DC=org"])

    attributes = auth.get_user_attributes(conn, user_dn)
    identity = auth.provider_identity({"name": "ann", "auth_state": {
        "ldap_groups": [], "user_attributes": attributes}})
    assert identity == ProviderIdentity("ldap", f"ldap:{{{guid}}}",
                                        frozenset({students, tas}))
