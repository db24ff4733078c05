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
