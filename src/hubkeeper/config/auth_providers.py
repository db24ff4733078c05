"""hub.yaml's identity providers besides GitHub: auth.oidc, auth.ldap, auth.lti13.

Each maps the provider's own groups to hub groups (`groups`) and names the provider groups
whose members are admins (`admin_groups`); `config/access.provider_groups` reads both the
same way for every provider. Secrets (client secrets, bind passwords) are read from the
state dir, never from hub.yaml.
"""

from __future__ import annotations

from pydantic import Field

from hubkeeper.config.types import GroupName, Section


class ProviderSection(Section):
    groups: dict[str, GroupName] = Field(
        default_factory=dict,
        description="The provider's group -> hub group (and Linux group in system mode). At "
        "each login a user's hub groups become the groups mapped from theirs, plus their "
        "roster groups; a provider group not listed here is ignored.",
    )
    admin_groups: list[str] = Field(
        default_factory=list,
        description="Members of these provider groups are hub admins, decided at each "
        "login; roster admins stay admins.",
    )


class OIDCSection(ProviderSection):
    pass


class LDAPSection(ProviderSection):
    pass


class LTI13Section(ProviderSection):
    pass
