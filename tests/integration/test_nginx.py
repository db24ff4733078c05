"""hub.url through a real nginx: `hubkeeper apply` writes the site, nginx checks and serves it.

Each test runs its own nginx (the `nginx` fixture of tests/integration/conftest.py: a main
configuration in a temporary directory, with its own pid file, logs and
`include <dir>/conf.d/*.conf`) on free ports, with a self-signed certificate
made by openssl. Only Let's Encrypt is played by a stand-in (certbot_standin.py): it cannot be
reached from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubkeeper.host.nginxctl import served_certificate
from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.hubproc import free_ports
from tests.support.nginxsite import Nginx, files_tls, hub_yaml, hubkeeper, self_signed
from tests.support.simuser import SimUser

pytestmark = [pytest.mark.component, pytest.mark.root]

PREFIX = TEST_ACCOUNT_PREFIX
PASSWORD = "Correct-Horse-7"
STANDIN = Path(__file__).parent / "certbot_standin.py"


def fingerprint(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).hexdigest()


def eventually(condition, deadline: float = 15.0) -> bool:
    """Whether condition() becomes true within the deadline (for what nginx does after a
    signal); not a timing assertion."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


def line_of(config: Path, text: str) -> int:
    return next(number for number, line in enumerate(config.read_text().splitlines(), 1)
                if text in line)


def http_get(port: int, path: str, host: str) -> tuple[int, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def https_request(server: Nginx, method: str, path: str, context: ssl.SSLContext,
                  body: bytes | None = None) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPSConnection("localhost", server.https_port, timeout=30,
                                             context=context)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def negotiated_protocol(server: Nginx, context: ssl.SSLContext) -> str | None:
    context.set_alpn_protocols(["h2", "http/1.1"])
    import socket

    with socket.create_connection(("127.0.0.1", server.https_port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        return tls.selected_alpn_protocol()


def test_a_hub_behind_nginx_login_spawn_kernel_and_upload_over_tls(
        place: Path, nginx: Nginx, clean_accounts, hubs) -> None:
    """The whole way in: http redirects to https, HSTS, HTTP/2, and a student logs in, starts
    a server, runs 1+1 over wss:// and uploads 20 MB, all through nginx, trusting only the
    test's self-signed certificate."""
    cert, key = self_signed(place, "localhost")
    user = f"{PREFIX}1"
    (place / "class.csv").write_text(f"username,password\n{user},{PASSWORD}\n")
    config = hub_yaml(place, nginx, name=f"{PREFIX}-web", tls=files_tls(cert, key),
                      mode="system", auth="pam", users="  roster:\n    csv: class.csv\n")
    site = nginx.conf_dir / f"hubkeeper-{PREFIX}-web.conf"

    applied = hubkeeper(config, "apply")
    assert applied.returncode == 0, applied.stderr
    assert f"create-account {user}" in applied.stdout
    assert f"install-nginx-site {site}" in applied.stdout
    assert f"start-nginx {nginx.main}" in applied.stdout
    hub = hubs.start(config)

    base = f"https://localhost:{nginx.https_port}/"
    assert http_get(nginx.http_port, "/hub/login?next=%2Fhub%2Fhome", "localhost") == (
        301, f"https://localhost:{nginx.https_port}/hub/login?next=%2Fhub%2Fhome")

    trust = ssl.create_default_context(cafile=str(cert))
    status, headers = https_request(nginx, "GET", "/hub/login", trust)
    assert status == 200
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert negotiated_protocol(nginx, ssl.create_default_context(cafile=str(cert))) == "h2"
    curl = shutil.which("curl")
    if curl:  # a real HTTP/2 request through to the hub: Host comes from :authority
        done = subprocess.run([curl, "-sS", "--http2", "--cacert", str(cert), "-o",
                               "/dev/null", "-w", "%{http_version} %{http_code}",
                               base + "hub/login"], capture_output=True, text=True,
                              timeout=60)
        assert done.stdout == "2 200", done.stderr

    big = os.urandom(20 << 20)  # over nginx's default client_max_body_size of 1M

    async def visit() -> tuple[str, dict]:
        async with SimUser(base, user, PASSWORD, ssl_context=trust) as student:
            await student.login()
            await student.start_server()
            await student.open_server()
            result = await student.run_code("1+1")  # wss:// through nginx
            model = await student.upload("big.bin", big)
            await student.stop_server()
            return result, model

    result, model = asyncio.run(visit())
    assert result == "2"
    assert model["size"] == len(big)
    assert (Path("/home") / user / "big.bin").read_bytes() == big
    assert hub.proc.poll() is None


def test_apply_writes_the_site_once_refuses_what_nginx_refuses_and_removes_it(
        place: Path, nginx: Nginx) -> None:
    cert, key = self_signed(place, "localhost")
    name = f"{PREFIX}-life"
    config = hub_yaml(place, nginx, name=name, tls=files_tls(cert, key),
                      nginx_extra="  max_upload: 1M\n")
    site = nginx.conf_dir / f"hubkeeper-{name}.conf"

    planned = hubkeeper(config, "plan")
    assert planned.returncode == 0, planned.stderr
    assert f"install-nginx-site {site}" in planned.stdout
    assert f"start-nginx {nginx.main}" in planned.stdout
    assert not site.exists() and nginx.pid() is None  # plan changes nothing

    first = hubkeeper(config, "apply")
    assert first.returncode == 0, first.stderr
    assert f"install-nginx-site {site}" in first.stdout
    master = nginx.pid()
    assert master is not None
    assert served_certificate(nginx.https_port, "localhost") == fingerprint(cert)
    journal = json.loads((place / "state" / "journal.json").read_text())
    record = journal["files"][str(site)]
    assert (record["kind"], record["state"]) == ("nginx-site", "created")
    assert record["sha256"] == hashlib.sha256(site.read_bytes()).hexdigest()
    # nginx.max_upload: 1M is nginx's to enforce (the hub behind it is not even running)
    trust = ssl.create_default_context(cafile=str(cert))
    assert https_request(nginx, "POST", "/hub/api/", trust, b"x" * (2 << 20))[0] == 413

    for verb in ("apply", "plan"):
        again = hubkeeper(config, verb)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("no changes"), again.stdout

    # A certificate nginx refuses (a 1024-bit RSA key, under OpenSSL's security level 2):
    # apply fails with nginx's words; the site on disk and what nginx serves stay as they were.
    weak_cert, weak_key = self_signed(place, "localhost", name="weak", bits=1024)
    good_yaml = config.read_text()
    config.write_text(good_yaml.replace(str(cert), str(weak_cert)).replace(str(key),
                                                                            str(weak_key)))
    before = site.read_bytes()
    broken = hubkeeper(config, "apply")
    assert broken.returncode == 1, broken.stdout
    assert "nginx refuses the configuration" in broken.stderr
    assert "ee key too small" in broken.stderr
    assert site.read_bytes() == before
    assert nginx.pid() == master
    assert served_certificate(nginx.https_port, "localhost") == fingerprint(cert)
    config.write_text(good_yaml)
    assert hubkeeper(config, "apply").stdout.startswith("no changes")  # the journal agrees

    # A new certificate in the same files: the site's header changes, nginx is reloaded.
    renewed_cert, renewed_key = self_signed(place, "localhost", name="renewed")
    shutil.copyfile(renewed_cert, cert)
    shutil.copyfile(renewed_key, key)
    reloaded = hubkeeper(config, "apply")
    assert reloaded.returncode == 0, reloaded.stderr
    assert f"reload-nginx {nginx.main}" in reloaded.stdout
    assert served_certificate(nginx.https_port, "localhost") == fingerprint(renewed_cert)

    # hub.url gone (and with it tls and nginx): the site is removed and nginx reloaded.
    hub_yaml(place, nginx, name=name, tls="", with_url=False)
    assert "url:" not in config.read_text()
    removed = hubkeeper(config, "apply")
    assert removed.returncode == 0, removed.stderr
    assert f"remove-nginx-site {site}" in removed.stdout
    assert f"reload-nginx {nginx.main}" in removed.stdout
    assert not site.exists()
    assert json.loads((place / "state" / "journal.json").read_text())["files"] == {}
    assert nginx.pid() == master
    assert eventually(lambda: served_certificate(nginx.https_port, "localhost") is None)


def test_a_site_file_hubkeeper_did_not_write_or_that_was_edited_is_left_alone(
        place: Path, nginx: Nginx) -> None:
    cert, key = self_signed(place, "localhost")
    name = f"{PREFIX}-own"
    config = hub_yaml(place, nginx, name=name, tls=files_tls(cert, key))
    site = nginx.conf_dir / f"hubkeeper-{name}.conf"
    site.write_text("# the operator's own site\n")

    refused = hubkeeper(config, "apply")
    assert refused.returncode == 2
    assert (f"{config}:{line_of(config, 'conf_dir:')}:13: nginx.conf_dir: {site} exists and "
            "was not written by hubkeeper") in refused.stderr
    assert site.read_text() == "# the operator's own site\n"
    assert not (place / "state").exists() and nginx.pid() is None  # nothing changed

    site.unlink()
    assert hubkeeper(config, "apply").returncode == 0
    site.write_text(site.read_text() + "# a hand edit\n")
    edited = hubkeeper(config, "apply")
    assert edited.returncode == 2
    assert f"{site} was changed by hand since hubkeeper wrote it" in edited.stderr
    assert site.read_text().endswith("# a hand edit\n")

    hub_yaml(place, nginx, name=name, tls="", with_url=False)  # hub.url removed
    left = hubkeeper(config, "apply")
    assert left.returncode == 0, left.stderr
    assert f"note: {site} was changed by hand" in left.stdout
    assert site.read_text().endswith("# a hand edit\n")


def _without_tls(text: str, values: dict) -> str:
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith(("tls:", "  certificate:", "  key:"))) + "\n"


BAD = {  # hub.yaml edit, field, message
    "http": (lambda text, v: text.replace("url: https://", "url: http://"),
             "hub.url", "must be an https:// address"),
    "path": (lambda text, v: text.replace(f"{v['https']}/", f"{v['https']}/course/"),
             "hub.url", "its path '/course/' must be hub.base_url '/'"),
    "no-tls": (_without_tls, "hub.url", "hub.url needs a certificate"),
    "foreign-key": (lambda text, v: text.replace(f"key: {v['key']}", f"key: {v['other']}"),
                    "tls.key", "is not the private key of the certificate"),
    "no-certificate": (lambda text, v: text.replace(f"certificate: {v['cert']}",
                                                    f"certificate: {v['cert']}.missing"),
                       "tls.certificate", "cannot read"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_hub_url_input_names_the_line_and_changes_nothing(place: Path, nginx: Nginx,
                                                              case: str) -> None:
    cert, key = self_signed(place, "localhost")
    _, other_key = self_signed(place, "localhost", name="other")
    config = hub_yaml(place, nginx, name=f"{PREFIX}-bad", tls=files_tls(cert, key))
    edit, field, message = BAD[case]
    before = config.read_text()
    config.write_text(edit(before, {"https": nginx.https_port, "key": key,
                                    "other": other_key, "cert": cert}))
    assert config.read_text() != before
    for verb in ("apply", "plan", "check"):
        done = hubkeeper(config, verb)
        assert done.returncode == 2, (verb, done.stdout, done.stderr)
        located = [line for line in done.stderr.splitlines() if message in line]
        assert located, done.stderr
        where, _, rest = located[0].strip().partition(f" {field}: ")
        assert rest, located[0]
        path, line, _column = where.rstrip(":").rsplit(":", 2)
        assert path == str(config)
        key_line = line_of(config, "url:" if field == "hub.url" else field.split(".")[1] + ":")
        assert int(line) == key_line, located[0]
    assert list(nginx.conf_dir.iterdir()) == []
    assert not (place / "state").exists() and nginx.pid() is None


@pytest.fixture
def letsencrypt_dirs():
    """Remove what a test adds under /etc/letsencrypt (and the folders it had to make)."""
    base = Path("/etc/letsencrypt")
    existed = {p for p in (base, base / "live", base / "renewal-hooks",
                           base / "renewal-hooks" / "deploy") if p.exists()}
    made: list[Path] = []
    yield made
    for path in made:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for folder in (base / "renewal-hooks" / "deploy", base / "renewal-hooks", base / "live",
                   base):
        if folder not in existed and folder.is_dir():
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty


def test_letsencrypt_with_a_stand_in_certbot(place: Path, nginx: Nginx,
                                             letsencrypt_dirs: list[Path]) -> None:
    """certbot is a stand-in (see certbot_standin.py): it checks its arguments, proves the
    challenge through the real nginx, and writes a self-signed certificate where certbot
    would. Everything else (the sites, the hook, nginx) is real."""
    name = f"{PREFIX}-acme"
    domain = f"{PREFIX}-{secrets.token_hex(4)}.localhost"
    live = Path("/etc/letsencrypt/live") / domain
    hook = Path("/etc/letsencrypt/renewal-hooks/deploy") / f"hubkeeper-{name}.sh"
    letsencrypt_dirs += [live, hook]
    webroot = place / "acme"
    config = hub_yaml(place, nginx, name=name, host=domain,
                      tls=f"tls:\n  letsencrypt_email: admin@example.org\n"
                          f"  webroot: {webroot}\n  staging: true\n")
    bin_dir = place / "bin"
    bin_dir.mkdir()
    (bin_dir / "certbot").write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    (bin_dir / "certbot").chmod(0o755)
    calls = place / "certbot.log"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HKTN_CERTBOT_LOG": str(calls),
           "HKTN_ACME_HTTP_PORT": str(nginx.http_port)}
    site = nginx.conf_dir / f"hubkeeper-{name}.conf"

    planned = hubkeeper(config, "plan", env=env)
    assert planned.returncode == 0, planned.stderr
    assert f"get-certificate {domain}" in planned.stdout
    assert "port 80 must reach it" in planned.stdout  # http_port is not 80 here

    applied = hubkeeper(config, "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    steps = [line.strip() for line in applied.stdout.splitlines() if line.startswith("  ")]
    assert steps == [
        f"install-nginx-site {site} (HTTP only, for Let's Encrypt's challenge)",
        f"start-nginx {nginx.main}",
        f"get-certificate {domain} (Let's Encrypt)",
        f"install-certbot-hook {hook}",
        f"install-nginx-site {site}",
        f"reload-nginx {nginx.main}",
    ]
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [[
        "certonly", "--webroot", "-w", str(webroot), "-d", domain, "--cert-name", domain,
        "-m", "admin@example.org", "--agree-tos", "--no-eff-email", "--non-interactive",
        "--keep-until-expiring", "--staging"]]
    assert served_certificate(nginx.https_port, domain) == fingerprint(live / "fullchain.pem")
    assert f"ssl_certificate {live}/fullchain.pem;" in site.read_text()
    assert hook.stat().st_mode & 0o777 == 0o755
    journal = json.loads((place / "state" / "journal.json").read_text())
    assert journal["files"][str(hook)]["kind"] == "certbot-hook"

    again = hubkeeper(config, "apply", env=env)
    assert again.stdout.startswith("no changes"), again.stdout
    assert len(calls.read_text().splitlines()) == 1  # the certificate is there: no certbot

    # A renewal: certbot replaces the files and runs the deploy hook, which reloads nginx.
    master = nginx.pid()
    renewed_cert, renewed_key = self_signed(place, domain, name="renewed")
    shutil.copyfile(renewed_cert, live / "fullchain.pem")
    shutil.copyfile(renewed_key, live / "privkey.pem")
    other = subprocess.run([str(hook)], env={**os.environ, "RENEWED_DOMAINS": "other.org"},
                           capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    ran = subprocess.run([str(hook)], env={**os.environ, "RENEWED_DOMAINS": domain},
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert eventually(lambda: served_certificate(nginx.https_port, domain)
                      == fingerprint(renewed_cert))  # the reload is a signal: nginx's pace
    assert nginx.pid() == master

    hub_yaml(place, nginx, name=name, tls="", with_url=False)
    removed = hubkeeper(config, "apply", env=env)
    assert removed.returncode == 0, removed.stderr
    assert f"remove-certbot-hook {hook}" in removed.stdout
    assert not hook.exists() and not site.exists()
    assert live.exists()  # the certificate is certbot's to delete (`certbot delete`)


def test_a_failed_challenge_leaves_the_http_site_and_a_retry_finishes(place: Path, nginx: Nginx,
                                                      letsencrypt_dirs: list[Path]) -> None:
    """The stand-in certbot (see certbot_standin.py) is sent to a port where nginx is not,
    as Let's Encrypt would be when port 80 does not reach this machine."""
    name = f"{PREFIX}-fail"
    domain = f"{PREFIX}-{secrets.token_hex(4)}.localhost"
    live = Path("/etc/letsencrypt/live") / domain
    hook = Path("/etc/letsencrypt/renewal-hooks/deploy") / f"hubkeeper-{name}.sh"
    letsencrypt_dirs += [live, hook]
    config = hub_yaml(place, nginx, name=name, host=domain,
                      tls=f"tls:\n  letsencrypt_email: admin@example.org\n"
                          f"  webroot: {place / 'acme'}\n")
    bin_dir = place / "bin"
    bin_dir.mkdir()
    (bin_dir / "certbot").write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    (bin_dir / "certbot").chmod(0o755)
    (nowhere,) = free_ports(1)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HKTN_CERTBOT_LOG": str(place / "log"),
           "HKTN_ACME_HTTP_PORT": str(nowhere)}
    site = nginx.conf_dir / f"hubkeeper-{name}.conf"

    failed = hubkeeper(config, "apply", env=env)
    assert failed.returncode == 1, failed.stdout
    assert f"certbot could not get a certificate for {domain}" in failed.stderr
    assert f"Challenge failed for domain {domain}: [Errno 111] Connection refused" in \
        failed.stderr  # certbot's own words are passed on
    assert "ssl_certificate" not in site.read_text()  # the HTTP-only site stays, valid
    assert http_get(nginx.http_port, "/x", domain) == (
        301, f"https://{domain}:{nginx.https_port}/x")
    assert not hook.exists() and not live.exists()
    assert served_certificate(nginx.https_port, domain) is None

    # Port 80 fixed: the next apply gets the certificate; the HTTP-only site was already there.
    env["HKTN_ACME_HTTP_PORT"] = str(nginx.http_port)
    retried = hubkeeper(config, "apply", env=env)
    assert retried.returncode == 0, retried.stderr
    steps = [line.strip() for line in retried.stdout.splitlines() if line.startswith("  ")]
    assert steps == [f"get-certificate {domain} (Let's Encrypt)",
                     f"install-certbot-hook {hook}", f"install-nginx-site {site}",
                     f"reload-nginx {nginx.main}"]
    assert served_certificate(nginx.https_port, domain) == fingerprint(live / "fullchain.pem")
    hub_yaml(place, nginx, name=name, tls="", with_url=False)
    assert hubkeeper(config, "apply", env=env).returncode == 0  # the hook goes with hub.url
    assert not hook.exists()


def test_plan_lists_the_site_and_the_unit_beside_the_accounts(place: Path, nginx: Nginx
                                                              ) -> None:
    """System mode, hub.url with files-provided TLS, a unit directory: `plan` shows the
    accounts, the site apply would write and what `service install` would do, and changes
    nothing."""
    cert, key = self_signed(place, "localhost")
    name = f"{PREFIX}-plan"
    config = hub_yaml(place, nginx, name=name, tls=files_tls(cert, key), mode="system",
                      auth="pam", users=f"  allowed: [{PREFIX}p1]\n")
    units = place / "units"
    config.write_text(config.read_text() + f"service:\n  unit_dir: {units}\n")
    site = nginx.conf_dir / f"hubkeeper-{name}.conf"
    unit = units / f"hubkeeper-{name}.service"

    planned = hubkeeper(config, "plan")
    assert planned.returncode == 0, planned.stderr
    assert f"create-account {PREFIX}p1" in planned.stdout
    assert f"install-nginx-site {site}" in planned.stdout
    assert f"start-nginx {nginx.main}" in planned.stdout
    assert "`hubkeeper service install` would (apply does not):" in planned.stdout
    assert f"install-systemd-unit {unit}" in planned.stdout
    shown = json.loads(hubkeeper(config, "plan", "--json").stdout)
    assert {"kind": "install-nginx-site", "subject": str(site), "detail": ""} \
        in shown["actions"]
    assert [a["kind"] for a in shown["service"]] == ["install-systemd-unit"]  # no systemd
    assert not site.exists() and not unit.exists() and nginx.pid() is None


def test_retire_removes_the_site_and_the_unit_by_their_inverse_actions(
        place: Path, nginx: Nginx, hubs) -> None:
    """What apply and `service install` wrote outside the state dir, retire undoes from the
    journal: the unit removed, the site removed, nginx reloaded and no longer serving it."""
    from hubkeeper.context.hub import Hub
    from hubkeeper.verbs.archive import archive as archive_verb

    cert, key = self_signed(place, "localhost")
    name = f"{PREFIX}-gone"
    config = hub_yaml(place, nginx, name=name, tls=files_tls(cert, key))
    units = place / "units"
    config.write_text(config.read_text() + f"service:\n  unit_dir: {units}\n"
                      "archive:\n  dir: archives\n")
    site = nginx.conf_dir / f"hubkeeper-{name}.conf"
    unit = units / f"hubkeeper-{name}.service"
    assert hubkeeper(config, "apply").returncode == 0
    assert hubkeeper(config, "service", "install").returncode == 0
    planned = hubkeeper(config, "plan")
    assert planned.stdout.startswith("no changes"), planned.stdout
    assert "install-systemd-unit" not in planned.stdout  # installed as hubkeeper writes it
    master = nginx.pid()
    assert master is not None and site.exists() and unit.exists()
    hubs.start(config).stop()
    archive_verb(Hub.open(config), None)

    done = hubkeeper(config, "retire", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    removed = {(i["kind"], i["name"]) for i in json.loads(done.stdout)["items"]
               if not i.get("refused")}
    assert {("file", str(site)), ("file", str(unit))} <= removed
    assert not site.exists() and not unit.exists()
    assert nginx.pid() == master  # reloaded, not restarted
    assert eventually(lambda: served_certificate(nginx.https_port, "localhost") is None)
