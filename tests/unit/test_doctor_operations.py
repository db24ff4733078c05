"""doctor's TLS and service checks, on real files (the certificate, the unit)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

from hubkeeper.config import load
from hubkeeper.context.hub import Hub
from hubkeeper.doctor.service import service_checks
from hubkeeper.doctor.tls import tls_checks
from hubkeeper.verbs.service import install
from tests.unit.test_nginx import loaded_with, make_cert

NOW = dt.datetime.now(dt.timezone.utc)


def test_tls_ok_soon_expired_and_no_url(tmp_path: Path) -> None:
    def check(days: int) -> list:
        cert, key = make_cert(tmp_path, ["jupyter.example.edu"], NOW + dt.timedelta(days=days),
                              name=f"c{days}")
        return list(tls_checks(SimpleNamespace(loaded=loaded_with(cert, key))))

    (good,) = check(60)
    assert good.status == "ok" and "valid for 5" in good.explanation
    (soon,) = check(5)
    assert soon.status == "problem" and "Browsers will refuse" in soon.explanation
    assert "tls.certificate" in soon.explanation  # files: the operator replaces them
    config = tmp_path / "hub.yaml"
    config.write_text("users: {allowed: [ann]}\n")
    assert list(tls_checks(SimpleNamespace(loaded=load(config)))) == []


def test_service_absent_installed_and_hand_edited(tmp_path: Path) -> None:
    units = tmp_path / "units"
    config = tmp_path / "hub.yaml"
    config.write_text("hub: {name: doc, mode: personal, state_dir: state}\n"
                      f"users: {{allowed: [ann]}}\nservice: {{unit_dir: {units}}}\n")

    def findings() -> list:
        hub = Hub.open(config)
        return list(service_checks(SimpleNamespace(loaded=hub.loaded, paths=hub.paths)))

    (absent,) = findings()
    assert absent.status == "ok" and "No systemd unit" in absent.explanation  # no systemd here
    install(Hub.open(config))
    (installed,) = findings()
    assert installed.status == "ok" and "installed as hubkeeper wrote it" in \
        installed.explanation
    unit = units / "hubkeeper-doc.service"
    unit.write_text(unit.read_text() + "# mine\n")
    (edited,) = findings()
    assert edited.status == "problem" and edited.subject == str(unit)
