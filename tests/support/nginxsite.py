"""A private nginx for tests of hub.url: its own main configuration, free ports, a
self-signed certificate made by openssl, and a hub.yaml that points `apply` at it.

The fixtures that use these (`place`, `nginx`) are in tests/integration/conftest.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.hubproc import HUBKEEPER, free_ports, write_config


@dataclass
class Nginx:
    dir: Path
    main: Path
    conf_dir: Path
    http_port: int
    https_port: int

    @property
    def pid_file(self) -> Path:
        return self.dir / "nginx.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)
        end = time.monotonic() + 15
        while time.monotonic() < end and self.pid() is not None:
            time.sleep(0.1)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)


def private_nginx(place: Path) -> Nginx:
    """An nginx main configuration of our own in place (pid file, logs, temp paths,
    `include <place>/conf.d/*.conf`), on free ports; nothing is started."""
    conf_dir = place / "conf.d"
    conf_dir.mkdir()
    main = place / "nginx.conf"
    main.write_text(f"""\
pid {place}/nginx.pid;
error_log {place}/error.log;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {place}/access.log;
    client_body_temp_path {place}/tmp-body;
    proxy_temp_path {place}/tmp-proxy;
    fastcgi_temp_path {place}/tmp-fastcgi;
    uwsgi_temp_path {place}/tmp-uwsgi;
    scgi_temp_path {place}/tmp-scgi;
    include {conf_dir}/*.conf;
}}
""")
    http_port, https_port = free_ports(2)
    return Nginx(place, main, conf_dir, http_port, https_port)


def self_signed(directory: Path, host: str, *, name: str = "cert", bits: int = 2048,
                days: int = 30) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", f"rsa:{bits}", "-nodes",
                    "-days", str(days), "-subj", f"/CN={host}",
                    "-addext", f"subjectAltName=DNS:{host}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


def files_tls(cert: Path, key: Path) -> str:
    return f"tls:\n  certificate: {cert}\n  key: {key}\n"


def hub_yaml(place: Path, server: Nginx, *, name: str, tls: str, host: str = "localhost",
             mode: str = "personal", auth: str = "shared-password",
             users: str = "  allowed: [student1]\n", nginx_extra: str = "",
             with_url: bool = True) -> Path:
    url = f"  url: https://{host}:{server.https_port}/\n" if with_url else ""
    web = (tls + f"nginx:\n  conf_dir: {server.conf_dir}\n  main_config: {server.main}\n"
           f"  http_port: {server.http_port}\n{nginx_extra}") if with_url else ""
    return write_config(place, name=name, mode=mode, auth=auth, users=users, hub_extra=url,
                        extra=web)


def hubkeeper(config: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


