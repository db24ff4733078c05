"""Doctor checks for backend docker: the engine answers, each environment's recorded image is
on it, and no container is left of a hub that is not running."""

from __future__ import annotations

from collections.abc import Iterable

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.config.backends import backend_of
from hubkeeper.doctor.findings import Context, Finding
from hubkeeper.host import images
from hubkeeper.host.running import running_hub

CHECK = "containers"


def container_checks(context: Context) -> Iterable[Finding]:
    spec = context.loaded.spec
    if backend_of(spec).environments != "image":
        return
    import docker

    try:
        client = images.engine()
        version = client.version()
    except (HubkeeperError, docker.errors.DockerException) as exc:
        yield Finding(CHECK, "problem", "docker engine",
                      f"The Docker engine does not answer ({exc}), so no server can start. "
                      "Start dockerd (`systemctl start docker`).")
        return
    yield Finding(CHECK, "ok", "docker engine",
                  f"The Docker engine {version.get('Version', '?')} answers.")
    for name in spec.environments:
        directory = context.paths.envs / name
        record = images.ImageRecord.read(directory)
        if record is None:
            yield Finding(CHECK, "problem", f"environment {name}",
                          f"No image is recorded for {name!r}, so its servers cannot start. "
                          f"Run `hubkeeper env build {name}`.")
            continue
        try:
            client.inspect_image(record.id)
        except docker.errors.ImageNotFound:
            yield Finding(CHECK, "problem", f"environment {name}",
                          f"The image {record.tag} ({record.id[7:19]}) recorded for {name!r} "
                          "is no longer on the engine (removed or pruned), so its servers "
                          f"cannot start. Run `hubkeeper env rebuild {name}`.")
            continue
        if images.needs_image(context.loaded, directory, name):
            yield Finding(CHECK, "warning", f"environment {name}",
                          f"hub.yaml or the build directory of {name!r} changed since "
                          f"{record.tag} was built; new servers still get the old image. "
                          f"Run `hubkeeper env build {name}`.")
        else:
            yield Finding(CHECK, "ok", f"environment {name}",
                          f"New servers of {name!r} start {record.tag}.")
    left = client.containers(all=True, filters={"label": f"hubkeeper.hub={spec.hub.name}"})
    if left and running_hub(context.paths) is None:
        names = ", ".join(c["Names"][0].lstrip("/") for c in left)
        yield Finding(CHECK, "warning", "containers",
                      f"The hub is not running but its containers are: {names} (a hub that "
                      "was killed). When the hub starts again it takes them over; "
                      "`docker rm -f` removes them. The users' files are on the host either "
                      "way.")
