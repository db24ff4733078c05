"""Environments as images on the local Docker engine (backend: docker).

    <state>/envs/<name>/image.json   {"tag", "id", "source", "built_at", "previous": [ids]}

`image.json` names the image new servers start, by id: written (atomically) only after a
good build or pull, so a failed build leaves servers on the image they had. Running
containers keep the image they were created from; old images stay on the engine.

A built image is tagged hubkeeper/<hub>-<environment>:<content hash>, the hash taken over
the build directory's files, the Dockerfile's name, the build args and trust_host_ca: a
changed file gives a new tag, an unchanged one builds nothing. `rebuild` builds without the
cache under <hash>-<stamp>. An `image:` environment is pulled when the engine lacks it (and
by `rebuild`); its id is recorded the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.config.environments import ImageBuild
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.types import config_relative

RECORD = "image.json"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA_NAME = ".hubkeeper-host-ca.crt"  # in the copied context
BUILD_CA_PATH = "/etc/ssl/certs/hubkeeper-build-ca.crt"  # in the image
# What RUN steps read to trust a CA bundle; ARG values are seen by RUN but not kept in the
# image's environment.
CA_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE",
                "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS")
BUILD_TIMEOUT = 3600  # seconds the engine may take to answer one build request
FROM_LINE = re.compile(r"^\s*FROM\s", re.IGNORECASE)


@dataclass(frozen=True)
class ImageRecord:
    tag: str  # what was built or pulled (hubkeeper/<hub>-<env>:<hash>, or image:)
    id: str  # sha256:..., what servers start
    source: str  # content hash of the build directory; "" for image:
    built_at: str
    previous: tuple[str, ...]  # ids recorded before, newest last

    @classmethod
    def read(cls, directory: Path) -> ImageRecord | None:
        try:
            data = json.loads((directory / RECORD).read_text())
        except FileNotFoundError:
            return None
        return cls(data["tag"], data["id"], data.get("source", ""), data.get("built_at", ""),
                   tuple(data.get("previous", ())))

    def write(self, directory: Path) -> None:
        body = {"tag": self.tag, "id": self.id, "source": self.source,
                "built_at": self.built_at, "previous": list(self.previous)}
        temporary = directory / f".{RECORD}.{os.getpid()}"
        temporary.write_text(json.dumps(body, indent=2) + "\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, directory / RECORD)


def engine() -> Any:
    """A client of the local engine (DOCKER_HOST or /var/run/docker.sock), or a plain error."""
    import docker  # the docker backend's dependency; the local backend never imports it

    try:
        client = docker.APIClient(version="auto", timeout=BUILD_TIMEOUT,
                                  **docker.utils.kwargs_from_env())
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        reason = str(exc).split(": ", 1)[-1][:200]
        raise HubkeeperError(
            f"the Docker engine at {where} does not answer ({reason})",
            hint="start it (dockerd, or `systemctl start docker`) and try again") from None
    return client


def context_hash(context: Path, build: ImageBuild) -> str:
    """Identity of a build: every file under context (path, executable bit, content or link
    target), the Dockerfile's name, the build args and trust_host_ca."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"dockerfile": build.dockerfile, "args": build.args,
                              "trust_host_ca": build.trust_host_ca}, sort_keys=True).encode())
    for root, dirs, files in os.walk(context):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            relative = str(path.relative_to(context))
            if path.is_symlink():
                digest.update(f"L {relative} {os.readlink(path)}\n".encode())
                continue
            executable = "x" if os.stat(path).st_mode & 0o100 else "-"
            digest.update(f"F {relative} {executable} {path.stat().st_size}\n".encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def image_repository(hub: str, name: str) -> str:
    return f"hubkeeper/{hub}-{name}"


def trusting_dockerfile(text: str) -> str:
    """The Dockerfile with the host's CA bundle given to every stage's RUN steps."""
    lines = []
    for line in text.splitlines():
        lines.append(line)
        if FROM_LINE.match(line):
            lines.append(f"COPY {BUILD_CA_NAME} {BUILD_CA_PATH}")
            lines += [f"ARG {variable}={BUILD_CA_PATH}" for variable in CA_VARIABLES]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def build_context(context: Path, build: ImageBuild) -> Iterator[Path]:
    """The directory the engine builds from: context itself, or (trust_host_ca) a copy with
    the host's CA bundle and a Dockerfile that hands it to RUN steps."""
    if not build.trust_host_ca:
        yield context
        return
    if not HOST_CA_BUNDLE.is_file():
        raise HubkeeperError(f"trust_host_ca: {HOST_CA_BUNDLE} does not exist",
                             hint="install ca-certificates, or set trust_host_ca: false")
    with tempfile.TemporaryDirectory(prefix="hubkeeper-build-") as work:
        copy = Path(work) / "context"
        shutil.copytree(context, copy, symlinks=True)
        shutil.copyfile(HOST_CA_BUNDLE, copy / BUILD_CA_NAME)
        dockerfile = copy / build.dockerfile
        dockerfile.write_text(trusting_dockerfile(dockerfile.read_text()))
        yield copy


def _stream(lines: Any, progress: Callable[[str], None]) -> list[str]:
    """Show the engine's JSON progress; return the last lines, raise on its error."""
    tail: list[str] = []
    for chunk in lines:
        if "error" in chunk:
            raise _Failed(tail + [str(chunk["error"]).strip()])
        text = chunk.get("stream") or chunk.get("status") or ""
        if chunk.get("progress"):
            continue  # per-layer download bars: the status lines say enough
        for line in str(text).splitlines():
            if line.strip():
                progress(line.rstrip())
                tail = (tail + [line.rstrip()])[-20:]
    return tail


class _Failed(Exception):
    def __init__(self, tail: list[str]) -> None:
        super().__init__("\n".join(tail))
        self.tail = tail


def build_image(client: Any, loaded: LoadedSpec, directory: Path, name: str, force: bool,
                progress: Callable[[str], None]) -> tuple[str, bool, str | None]:
    """Build (or pull) NAME's image when its content changed and record it in `directory`
    (<state>/envs/NAME) for new servers. Returns (tag, whether a new image was recorded,
    the id recorded before)."""
    env = loaded.spec.environments[name]
    before = ImageRecord.read(directory)
    if env.image is not None:
        return _pull(client, env.image, directory, before, force, progress)
    assert env.build is not None  # checked when hub.yaml is loaded
    context = config_relative(loaded.directory, env.build.context)
    source = context_hash(context, env.build)
    tag = f"{image_repository(loaded.spec.hub.name, name)}:{source}"
    if not force and before is not None and before.source == source and _exists(client,
                                                                                  before.id):
        return before.tag, False, before.id
    if force:
        tag += "-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    progress(f"== {name}: building {tag} from {context}")
    try:
        with build_context(context, env.build) as path:
            _stream(client.build(path=str(path), dockerfile=env.build.dockerfile, tag=tag,
                                 buildargs=dict(env.build.args), rm=True, forcerm=True,
                                 nocache=force, decode=True), progress)
    except _Failed as failed:
        raise HubkeeperError(
            f"building the image of environment {name!r} failed:\n  "
            + "\n  ".join(failed.tail[-15:]),
            hint=f"fix {context / env.build.dockerfile}; servers keep starting the image "
            "they had") from None
    return _record(client, tag, source, directory, before), True, before.id if before else None


def _exists(client: Any, image: str) -> bool:
    import docker

    try:
        client.inspect_image(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(client: Any, image: str, directory: Path, before: ImageRecord | None, force: bool,
          progress: Callable[[str], None]) -> tuple[str, bool, str | None]:
    import docker

    present = _exists(client, image)
    if present and not force:
        if before is not None and before.tag == image and _exists(client, before.id):
            return image, False, before.id
    else:
        progress(f"== pulling {image}")
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (
            image, "", "latest")
        try:
            _stream(client.pull(repository, tag=tag, stream=True, decode=True), progress)
        except (_Failed, docker.errors.APIError) as exc:
            if not present:
                raise HubkeeperError(
                    f"image {image} is not on this engine and could not be pulled: {exc}",
                    hint="check the name, or load it (docker load / docker build)") from None
            progress(f"   could not pull ({str(exc).strip()[:200]}); using the image this "
                     "engine has")
    _record(client, image, "", directory, before)
    after = ImageRecord.read(directory)
    changed = before is None or after is None or before.id != after.id
    return image, changed, before.id if before else None


def _record(client: Any, tag: str, source: str, directory: Path,
            before: ImageRecord | None) -> str:
    image_id = client.inspect_image(tag)["Id"]
    previous: tuple[str, ...] = ()
    if before is not None:
        previous = tuple(p for p in before.previous if p != image_id)
        if before.id != image_id:
            previous = (*previous, before.id)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    ImageRecord(tag, image_id, source, stamp, previous[-10:]).write(directory)
    return tag


def needs_image(loaded: LoadedSpec, directory: Path, name: str) -> bool:
    """Whether NAME has no recorded image, or one made from other content."""
    record = ImageRecord.read(directory)
    if record is None:
        return True
    env = loaded.spec.environments[name]
    if env.image is not None:
        return record.tag != env.image
    assert env.build is not None
    return record.source != context_hash(config_relative(loaded.directory, env.build.context),
                                         env.build)


def discard(directory: Path, hub: str) -> str | None:
    """retire: remove the hub's leftover containers (a killed hub's) and the tags of every
    image hubkeeper built for this environment (hubkeeper/<hub>-<name>:*); the engine deletes
    an image with its last tag. A pulled `image:` is left: other hubs or people may use it.
    Returns what could not be removed, or None."""
    if ImageRecord.read(directory) is None:
        return None
    import docker

    repository = image_repository(hub, directory.name)
    left: list[str] = []
    try:
        client = engine()
        for container in client.containers(all=True, filters={"label": f"hubkeeper.hub={hub}"}):
            client.remove_container(container["Id"], force=True)
        for image in client.images(name=repository):
            for tag in image.get("RepoTags") or []:
                if not tag.startswith(repository + ":"):
                    continue
                try:
                    client.remove_image(tag)
                except docker.errors.ImageNotFound:
                    continue
                except docker.errors.APIError as exc:
                    left.append(f"{tag} ({exc.explanation or exc})")
    except (HubkeeperError, docker.errors.DockerException) as exc:
        return f"the Docker engine did not answer ({exc}); remove {repository}:* by hand"
    return "; ".join(left) or None
