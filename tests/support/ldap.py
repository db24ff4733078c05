"""A private OpenLDAP server for tests: Debian's slapd on a temp directory and a free port.

Its own configuration (a slapd.conf, checked by `slaptest`; no cn=config), its own database,
pid file and log, all under /tmp/<prefix>-ldap-*; it listens only on ldap://127.0.0.1:PORT/.
The machine's own /etc/ldap is only read (its schema files), and a system slapd, if one runs,
is neither used nor touched. Stopped by its pid.

It speaks StartTLS on ldap:// and TLS on a second port (ldaps://), with a certificate for
127.0.0.1 and localhost from its own CA (`ca_file`).

The directory: dc=<prefix>,dc=test with ou=people (inetOrgPerson + posixAccount entries with
userPassword and uidNumber) and ou=groups (groupOfNames: students, tas, others).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SLAPTEST = "/usr/sbin/slaptest"
SLAPADD = "/usr/sbin/slapadd"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


@dataclass(frozen=True)
class Person:
    uid: str
    password: str
    uid_number: int
    groups: tuple[str, ...] = ()  # cn of the groups under ou=groups


def make_ca(directory: Path, name: str) -> tuple[Path, object, object]:
    """A self-signed CA: (its PEM file, certificate, key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def _server_certificate(directory: Path, ca_cert, ca_key) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A certificate for 127.0.0.1 and localhost signed by the CA: (certificate, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class LdapServer:
    root: Path
    port: int
    tls_port: int  # ldaps://
    ca_file: Path  # the CA of the server's certificate (for 127.0.0.1 and localhost)
    base: str
    admin_dn: str
    admin_password: str
    people: dict[str, Person]
    log: Path = field(default_factory=Path)
    proc: subprocess.Popen[bytes] | None = None  # slapd in the foreground (-d 0), our child

    @property
    def url(self) -> str:
        """Plain LDAP; StartTLS is offered on it."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},ou=people,{self.base}"

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},ou=groups,{self.base}"

    def search(self, base: str, *attributes: str) -> str:
        """ldapsearch's LDIF of one entry (as the admin), for assertions and diagnostics."""
        done = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", self.url, "-D", self.admin_dn, "-w",
             self.admin_password, "-b", base, "-s", "base", *attributes],
            capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def entry_uuid(self, uid: str) -> str:
        return self.search(self.user_dn(uid), "entryUUID").split("entryUUID:")[1].strip()

    def renew_entry(self, uid: str) -> None:
        """Delete uid's entry and add it again, as a directory does when a name passes to
        someone else: the same DN, name and password, a new entryUUID."""
        person = self.people[uid]
        admin = ["-x", "-H", self.url, "-D", self.admin_dn, "-w", self.admin_password]
        for command, text in (
                (["ldapdelete", *admin, self.user_dn(uid)], None),
                (["ldapadd", *admin], _person_ldif(self.base, person))):
            done = subprocess.run(command, input=text, capture_output=True, text=True,
                                  timeout=30)
            assert done.returncode == 0, done.stdout + done.stderr

    def stop(self) -> None:
        """SIGTERM by pid (slapd closes its database cleanly), SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hash(password: str) -> str:
    done = subprocess.run(["slappasswd", "-s", password], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def _slapd_conf(root: Path, base: str, admin_dn: str, admin_hash: str) -> str:
    includes = "".join(f"include /etc/ldap/schema/{name}.schema\n" for name in SCHEMAS)
    # Anyone may read the directory but passwords; a user may bind with (auth) theirs.
    return f"""\
{includes}pidfile {root}/slapd.pid
argsfile {root}/slapd.args
TLSCACertificateFile {root}/ca.pem
TLSCertificateFile {root}/server.pem
TLSCertificateKeyFile {root}/server.key
modulepath /usr/lib/ldap
moduleload back_mdb
loglevel stats
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by * read
database mdb
maxsize 67108864
suffix "{base}"
rootdn "{admin_dn}"
rootpw {admin_hash}
directory {root}/data
index objectClass eq
index uid,cn,member eq
"""


def _person_ldif(base: str, person: Person) -> str:
    return (f"dn: uid={person.uid},ou=people,{base}\nobjectClass: inetOrgPerson\n"
            f"objectClass: posixAccount\nuid: {person.uid}\ncn: {person.uid}\n"
            f"sn: {person.uid}\nuidNumber: {person.uid_number}\ngidNumber: 100\n"
            f"homeDirectory: /nonexistent\nuserPassword: {_hash(person.password)}\n")


def _ldif(base: str, domain: str, people: dict[str, Person], groups: tuple[str, ...],
          extra_members: dict[str, str]) -> str:
    entries = [f"dn: {base}\nobjectClass: dcObject\nobjectClass: organization\n"
               f"dc: {domain}\no: {domain}\n",
               f"dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n",
               f"dn: ou=groups,{base}\nobjectClass: organizationalUnit\nou: groups\n"]
    entries += [_person_ldif(base, person) for person in people.values()]
    for group in groups:
        members = [f"uid={p.uid},ou=people,{base}" for p in people.values()
                   if group in p.groups]
        # groupOfNames needs a member: the directory's admin stands in for an empty group.
        members = members or [extra_members[group]]
        entries.append(f"dn: cn={group},ou=groups,{base}\nobjectClass: groupOfNames\n"
                       f"cn: {group}\n" + "".join(f"member: {m}\n" for m in members))
    return "\n".join(entries)


def start_slapd(prefix: str, people: dict[str, Person],
                groups: tuple[str, ...] = ("students", "tas", "others"),
                deadline: float = 30.0) -> LdapServer:
    """slapd (as the openldap account when there is one) with `people` and `groups`."""
    if not (os.path.exists(SLAPD) and os.path.exists(SLAPTEST)):
        raise FileNotFoundError(f"{SLAPD} (Debian's slapd package) is not installed")
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-ldap-"))
    os.chmod(root, 0o755)
    domain = prefix
    base = f"dc={domain},dc=test"
    admin_dn = f"cn=admin,{base}"
    admin_password = "ldap-admin-" + os.urandom(6).hex()
    server = LdapServer(root, _free_port(), _free_port(), root / "ca.pem", base, admin_dn,
                        admin_password, dict(people), log=root / "slapd.log")
    try:
        (root / "data").mkdir()
        _, ca_cert, ca_key = make_ca(root, "ca")
        _server_certificate(root, ca_cert, ca_key)
        conf = root / "slapd.conf"
        conf.write_text(_slapd_conf(root, base, admin_dn, _hash(admin_password)))
        _run([SLAPTEST, "-u", "-f", str(conf)])  # the configuration alone (-u: no database)
        ldif = root / "data.ldif"
        ldif.write_text(_ldif(base, domain, people, groups,
                              {group: admin_dn for group in groups}))
        _run([SLAPADD, "-f", str(conf), "-b", base, "-l", str(ldif)])
        user: list[str] = []
        with contextlib.suppress(KeyError):
            account = pwd.getpwnam("openldap")
            for path in (root, root / "data"):
                _chown_tree(path, account.pw_uid, account.pw_gid)
            user = ["-u", "openldap", "-g", "openldap"]
        with open(server.log, "ab") as sink:
            # -d: stay in the foreground (debug level 0 logs nothing more than `loglevel`),
            # so that the pid is our child's and its log goes to our file.
            proc = subprocess.Popen(
                [SLAPD, "-d", "0", "-h", f"{server.url}/ {server.ldaps_url}/", "-f", str(conf),
                 *user], stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        server.proc = proc
        _wait_answering(server, proc, deadline)
    except BaseException:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    # Our own fresh temp tree, which no other account can write: chown by path is safe.
    os.chown(path, uid, gid)
    if path.is_dir():
        for child in path.rglob("*"):
            os.chown(child, uid, gid, follow_symlinks=False)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")


def _wait_answering(server: LdapServer, proc: subprocess.Popen[bytes],
                    deadline: float) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"slapd exited with {proc.returncode}:\n"
                               f"{server.log.read_text(errors='replace')[-3000:]}")
        done = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", server.url, "-b", server.base, "-s", "base",
             "dn"], capture_output=True, text=True, timeout=10)
        if done.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"slapd did not answer on {server.url} within {deadline} s:\n"
                       f"{server.log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def running_slapd(prefix: str, people: dict[str, Person]) -> Iterator[LdapServer]:
    server = start_slapd(prefix, people)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
