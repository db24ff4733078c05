"""The seed set-ups of examples/ that run on the local backend: each loads with its roster,
every file it names exists, and it renders (seeds 000 and 004; the docker ones are in
test_docker_backend.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hubkeeper.config import load
from hubkeeper.config.rules.roster import environment_group_problems
from hubkeeper.host.preflight import environment_file_problems
from hubkeeper.render.jupyterhub import render
from hubkeeper.roster import build_roster
from tests.unit.test_render import runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def loaded_and_rendered(name: str):
    path = EXAMPLES / name / "hub.yaml"
    loaded = load(path)
    roster = build_roster(loaded)
    assert environment_group_problems(loaded, roster.groups) == []
    assert environment_file_problems(loaded) == []
    base = runtime("auth: {kind: pam}\nusers: {allowed: [a]}\n")
    c = render(loaded.spec, dataclasses.replace(base, roster=roster, config_dir=path.parent))
    return loaded, roster, c


def test_seed_000_the_finished_course_snapshots_to_two_disks_archives_and_retires() -> None:
    loaded, roster, c = loaded_and_rendered("earth")
    spec = loaded.spec
    # The seed's two volumes, each holding a complete snapshot.
    assert spec.snapshots.targets == ["/storage/earth_data/system/snapshots",
                                      "/storage/backup/system/snapshots"]
    assert spec.archive.dir == "/storage/backup/archives"
    # Its accounts: the instructors, 3 demonstrators, 25 geosciences and 42 training users,
    # made and later removed by hubkeeper (retire reads the journal apply writes).
    names = set(roster.by_name())
    assert len(names) == 2 + 3 + 25 + 42
    assert {"instructor", "geosciences_demonstrator3", "geosciences_user25",
            "training_user42"} <= names
    assert sorted(c.Authenticator.admin_users) == ["geosciences_instructor", "instructor"]
    # The weekly data folders (the seed's rm -fr /storage/earth_data/week*) are hubkeeper's.
    assert [each.path for each in spec.data.shared] == [
        f"/storage/earth_data/week{n}" for n in (1, 2, 3)]
    assert c.HubkeeperSpawner.environments["python"]["path"].endswith("/envs/python")


def test_seed_004_the_public_course_server_behind_nginx() -> None:
    from hubkeeper.render.nginx import render_site
    from hubkeeper.render.systemd import render_unit

    loaded, roster, c = loaded_and_rendered("nlp")
    spec = loaded.spec
    # nginx + Let's Encrypt: the site proxies the hub (websockets too) with the certificate
    # certbot keeps; the unit runs `hubkeeper up` and calls the seed's failure handler.
    site = render_site(spec, config_path=str(loaded.path))
    assert "server_name jupyter.example.org;" in site
    assert "/etc/letsencrypt/live/jupyter.example.org/fullchain.pem" in site
    assert "proxy_set_header Upgrade $http_upgrade;" in site
    assert "client_max_body_size 200m;" in site
    unit = render_unit(spec, loaded.path, Path("/opt/hubkeeper/current/bin/hubkeeper"))
    assert "OnFailure=notify-failed@%n.service" in unit
    assert "ExecStart=/opt/hubkeeper/current/bin/hubkeeper" in unit
    # The idle culler after an hour; the NLTK data in every server's environment.
    services = {service["name"]: service for service in c.JupyterHub.services}
    assert "--timeout=3600" in services["idle-culler"]["command"]
    assert c.HubkeeperSpawner.server_env == {"NLTK_DATA": "/srv/nltk_data"}
    # Python from the seed's requirements.txt for everyone, R for the stats group.
    assert spec.environments["python"].requirements == "requirements.txt"
    r = spec.environments["r"]
    assert r.r is not None and list(r.r.packages) == ["jsonlite", "data.table"]
    assert c.HubkeeperSpawner.environments["r"]["groups"] == ["stats"]
    # RStudio under a sub-path of the same site, behind the hub's login, for stats only.
    assert services["rstudio"]["url"] == "http://127.0.0.1:8788"
    assert "--group" in services["rstudio"]["command"]
    # The instructor's material merged into ~/<environment>/course at every start.
    assert c.HubkeeperSpawner.materials[0]["target"] == "course"
