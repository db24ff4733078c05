"""Which names may become hub users and Linux accounts, and why a name is refused."""

from __future__ import annotations

import re

MAX_ACCOUNT = 32
NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

# Accounts and groups of the system and of common services: never a student's name.
RESERVED = frozenset({
    "root", "daemon", "bin",
    "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data", "backup",
    "list", "irc", "gnats", "nobody", "nogroup", "_apt", "messagebus", "sshd", "systemd-network",
    "systemd-resolve", "systemd-timesync", "systemd-journal", "systemd-coredump", "polkitd",
    "avahi", "colord", "dnsmasq", "ntp", "chrony", "postfix", "admin", "administrator",
    "operator", "halt", "shutdown", "ftp", "postgres", "mysql", "redis", "nginx", "apache",
    "docker", "munge", "slurm", "hubkeeper", "jupyterhub", "jupyter", "sudo", "adm", "wheel",
    "staff", "users", "shadow", "disk", "kmem", "tty", "dialout", "cdrom", "floppy", "audio",
    "video", "plugdev", "netdev", "input", "render", "kvm", "sgx", "tape", "voice", "fax", "src",
    "utmp", "sasl", "lpadmin", "crontab",
    "z2jh",  # `hubkeeper export z2jh` writes the Kubernetes values, not a user's zip
    "hubkeeper-canary",  # upgrade's own user (host/canary.py): never a roster or provider name
    "hubkeeper-web",  # the web service's journal record (verbs/up.py, docs/web.md)
    # (its accounts, hkcanary-<hub>, and the web service's, hkweb-<hub>, are refused by
    # prefix below)
})


def name_problem(name: str, what: str = "user name") -> str | None:
    """Why `name` cannot be a hub user / Linux account name, or None if it can."""
    if name == "":
        return f"empty {what}"
    if not name.isascii():
        return f"{name!r} has non-ASCII characters; a {what} is a-z, 0-9, '_' and '-'"
    if any(ch in name for ch in "/\\") or name in (".", "..") or ".." in name:
        return f"{name!r} looks like a path; a {what} is a-z, 0-9, '_' and '-'"
    if name.startswith("-"):
        return f"{name!r} starts with '-' (commands would read it as an option)"
    if len(name) > MAX_ACCOUNT:
        return f"{name!r} has {len(name)} characters; at most {MAX_ACCOUNT}"
    if name.lower() != name and NAME_RE.match(name.lower()):
        return f"{name!r} has upper-case letters; did you mean {name.lower()!r}?"
    if not NAME_RE.match(name):
        bad = sorted({ch for ch in name if not (ch.isalnum() or ch in "_-")})
        shown = " ".join(repr(ch) for ch in bad) if bad else "its first character"
        return (f"{name!r} is not a portable Linux name (because of {shown}); use a-z, "
                "0-9, '_' and '-', starting with a letter or '_'")
    if name in RESERVED or name.startswith(("systemd-", "hkcanary-", "hkweb-")):
        return f"{name!r} is reserved for the system or a service"
    return None


def portable_name(raw: str, prefix: str = "") -> str:
    """The hub user name for a name an identity provider gives (a GitHub login, a
    preferred_username, an LDAP uid, an e-mail): lower case, an e-mail's domain dropped,
    every other character than a-z 0-9 '_' '-' turned into '-'. Raises ValueError saying
    why when the result cannot be an account (too long with `prefix`, reserved, not
    starting with a letter or '_'): such a login is refused, never truncated into
    someone else's name."""
    name = raw.strip().lower()
    if "@" in name:
        name = name.split("@", 1)[0]
    name = re.sub(r"[^a-z0-9_-]", "-", name)
    reason = name_problem(name)
    if reason is None and len(prefix + name) > MAX_ACCOUNT:
        reason = (f"account {prefix + name!r} (with users.account_prefix) has more than "
                  f"{MAX_ACCOUNT} characters")
    if reason is not None:
        raise ValueError(f"the provider's name {raw!r} gives {reason}")
    return name
