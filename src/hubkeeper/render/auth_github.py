"""auth.kind github: the traits of GitHubTeamsAuthenticator (hub/auth.py) and of
oauthenticator's GitHubOAuthenticator it extends. Pure: only sets values.

The generic provider traits (group map, admin groups, first login, subjects) are set by
render/jupyterhub.update_auth for every provider; this sets what only GitHub has."""

from __future__ import annotations

from traitlets.config import Config

from hubkeeper.config.model import HubSpec
from hubkeeper.context.runtime import Runtime
from hubkeeper.state import github_ids


def update_github_auth(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    github = spec.auth.github
    c.GitHubOAuthenticator.client_id = runtime.secrets.github_client_id
    c.GitHubOAuthenticator.client_secret = runtime.secrets.github_client_secret
    c.GitHubOAuthenticator.oauth_callback_url = github.callback_url
    # github.com's API is api.github.com; an Enterprise Server's is <url>/api/v3
    # (oauthenticator derives both, and the OAuth pages, from github_url).
    c.GitHubOAuthenticator.github_url = github.url
    c.GitHubOAuthenticator.allowed_organizations = set(github.organizations)
    # read:org lets the hub see private memberships and the user's teams; nothing more.
    needs_teams = bool(github.teams_to_groups or github.admin_teams)
    c.GitHubOAuthenticator.scope = (["read:org"] if github.organizations or needs_teams
                                    else [])
    # Whoever leaves the organisation is refused at their next login.
    c.GitHubOAuthenticator.allow_existing_users = False
    # A login stays with the GitHub user id of its first login (renamed logins).
    c.GitHubTeamsAuthenticator.github_ids_file = str(runtime.state.root
                                                     / github_ids.FILE_NAME)
    if needs_teams:
        # The user's teams, listed at each login, are the provider groups that
        # update_provider maps to hub groups and admins.
        c.GitHubOAuthenticator.populate_teams_in_auth_state = True
