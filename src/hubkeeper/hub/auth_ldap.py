"""LDAP and Active Directory logins: jupyterhub-ldapauthenticator with hubkeeper's identity.

ldapauthenticator binds with the login's password (a DN from bind_dn_template, or one found
by a search) and, for `allowed_groups`, checks membership with the user's own connection,
putting the groups found into auth_state["ldap_groups"]. Here the same connection also
reads, into auth_state["user_attributes"]:
- the entry's DN and its stable id: entryUUID (OpenLDAP), objectGUID (Active Directory) or
  uidNumber, whichever the server's schema has; the subject is the first found, else the DN;
- the user's membership of every other group DN hub.yaml names (auth.ldap.groups,
  admin_groups), looked up the way ldapauthenticator looks up allowed_groups, and their
  memberOf values where the server keeps them (Active Directory, OpenLDAP's memberof).
"""

from __future__ import annotations

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn
from ldapauthenticator import LDAPAuthenticator as _LDAPAuthenticator

from hubkeeper.hub.auth import HubkeeperAuthenticator, ProviderIdentity, refusal

# The entry's stable id, best first; the DN (which a rename changes) when none is there.
ID_ATTRIBUTES = ("entryUUID", "objectGUID", "uidNumber")
EXTRA_ATTRIBUTES = ("memberOf", "uid")
GROUPS_KEY = "hubkeeper_groups"  # in auth_state["user_attributes"]: the group DNs found


def normal_dn(dn: str) -> str:
    """A DN compared the way LDAP compares them here: attribute names and values without
    case, no spaces around separators."""
    try:
        return ",".join(f"{attr.lower()}={value.lower()}"
                        for attr, value, _ in parse_dn(dn, escape=False, strip=True))
    except LDAPInvalidDnError:
        return dn.strip().lower()


def _first(values: object) -> object:
    if isinstance(values, (list, tuple)):
        return values[0] if values else None
    return values


class LDAPAuthenticator(HubkeeperAuthenticator, _LDAPAuthenticator):
    """ldapauthenticator whose logins carry a ProviderIdentity: 'ldap:<id>' and the user's
    group DNs (as hub.yaml spells them), mapped to hub groups and admins by
    HubkeeperAuthenticator. Who is admitted is ldapauthenticator's own rule: the roster
    (allowed_users), users.allow_all, or membership of allowed_groups."""

    async def authenticate(self, handler, data):  # type: ignore[no-untyped-def]
        """ldapauthenticator's, with a server that cannot be reached (down, a TLS
        certificate that does not verify) shown as such instead of a 500."""
        try:
            return await super().authenticate(handler, data)
        except LDAPException as exc:
            self.log.error("login of %s: the LDAP server %s:%s failed: %s",
                           data.get("username"), self.server_address, self.server_port, exc)
            raise refusal(503, "The hub cannot reach the directory (LDAP) server to check "
                          "your password. Try again later, or tell your instructor.") from None

    def provider_identity(self, model: dict) -> ProviderIdentity | None:
        auth_state = model.get("auth_state") or {}
        attributes = auth_state.get("user_attributes") or {}
        subject = None
        for name in ID_ATTRIBUTES:
            value = _first(attributes.get(name))
            if value not in (None, ""):
                subject = str(value)
                break
        subject = subject or attributes.get("dn")
        if not subject:
            self.log.warning("%s: the directory gave no id or DN for this login",
                             model.get("name"))
            return None
        found = {normal_dn(dn) for dn in (*(auth_state.get("ldap_groups") or ()),
                                          *(attributes.get(GROUPS_KEY) or ()))}
        # Each of hub.yaml's spellings of a group found (group_map and admin_groups are
        # matched by their own string).
        groups = {dn for normal, spellings in self._named_groups().items()
                  if normal in found for dn in spellings}
        return ProviderIdentity("ldap", f"ldap:{subject}", frozenset(groups))

    def _named_groups(self) -> dict[str, set[str]]:
        """Every group DN hub.yaml names: its normal form -> hub.yaml's spellings of it."""
        named: dict[str, set[str]] = {}
        for dn in (*(self.allowed_groups or ()), *self.group_map, *self.provider_admin_groups):
            named.setdefault(normal_dn(dn), set()).add(dn)
        return named

    def get_user_attributes(self, conn: ldap3.Connection, userdn: str) -> dict:
        """The entry's id, DN and groups (the user's own connection, bound by now)."""
        schema = conn.server.schema
        # Asking for an attribute the schema lacks is an error in ldap3 (entryUUID on
        # Active Directory, objectGUID on OpenLDAP): ask only for those it has.
        names = (*ID_ATTRIBUTES, *EXTRA_ATTRIBUTES, *self.auth_state_attributes)
        wanted = [name for name in names
                  if schema is None or name in schema.attribute_types]
        found: dict = {"dn": userdn}
        try:
            conn.search(search_base=userdn, search_scope=ldap3.BASE,
                        search_filter="(objectClass=*)", attributes=wanted)
        except LDAPException as exc:
            self.log.error("reading the entry %s failed: %s", userdn, exc)
        else:
            if len(conn.entries) == 1:
                entry = conn.entries[0]
                found.update(entry.entry_attributes_as_dict)
                found["dn"] = entry.entry_dn
            else:
                self.log.error("reading the entry %s gave %d entries, not 1", userdn,
                               len(conn.entries))
        uid = str(_first(found.get("uid")) or "")
        found[GROUPS_KEY] = self._member_of(conn, found["dn"], uid, found.get("memberOf"))
        return found

    def _member_of(self, conn: ldap3.Connection, userdn: str, uid: str,
                   member_of: object) -> list[str]:
        """The group DNs hub.yaml names that the user is in: memberOf where the server keeps
        it, else each group searched with group_search_filter (member, uniqueMember,
        memberUid), as ldapauthenticator checks allowed_groups."""
        values = member_of if isinstance(member_of, (list, tuple)) else []
        listed = {normal_dn(str(dn)) for dn in values}
        groups = []
        for normal, spellings in sorted(self._named_groups().items()):
            dn = min(spellings)
            if normal in listed:
                groups.append(dn)
                continue
            search_filter = self.group_search_filter.format(
                userdn=escape_filter_chars(userdn), uid=escape_filter_chars(uid))
            try:
                if conn.search(search_base=dn, search_scope=ldap3.BASE,
                               search_filter=search_filter, attributes=[]):
                    groups.append(dn)
            except LDAPException as exc:
                self.log.warning("looking up %s in the group %s failed: %s", userdn, dn, exc)
        return groups
