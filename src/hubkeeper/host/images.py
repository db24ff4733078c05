"""Environments as images on the local Docker engine (backend: docker).

    <state>/envs/<name>/image.json   {"tag", "id", "source", "built_at", "previous": [ids],
                                      "history": [every id kept, in the order recorded]}

`image.json` names the image new servers start, by id: written (atomically) only after a
good build or pull, so a failed build leaves servers on the image they had. Running
containers keep the image they were created from. After a new image the oldest beyond the
environment's `keep` lose their hubkeeper tags (the engine then deletes them), except any a
container still uses; `env rollback` records an earlier one again and pins it
(host/envkeep.py).

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

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.config.environments import ImageBuild
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.types import config_relative
from hubkeeper.host.envkeep import Pin, pin_now, prune_order

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
    history: tuple[str, ...]  # every id kept, in the order first recorded, `id` among them

    @property
    def previous(self) -> tuple[str, ...]:
        """The other ids kept, oldest first."""
        return tuple(each for each in self.history if each != self.id)

    @classmethod
    def read(cls, directory: Path) -> ImageRecord | None:
        try:
            data = json.loads((directory / RECORD).read_text())
        except FileNotFoundError:
            return None
        history = data.get("history") or [*data.get("previous", ()), data["id"]]
        return cls(data["tag"], data["id"], data.get("source", ""), data.get("built_at", ""),
                   tuple(history))

    def write(self, directory: Path) -> None:
        body = {"tag": self.tag, "id": self.id, "source": self.source,
                "built_at": self.built_at, "previous": list(self.previous),
                "history": list(self.history)}
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
    pin = Pin.read(directory)
    if not force and before is not None and pin is not None and pin.holds(
            before.id, content_id(loaded, name)) and _exists(client, before.id):
        progress(f"== {name}: {before.tag} is pinned by `env rollback` ({pin.at}); "
                 f"`hubkeeper env rebuild {name}` builds anew")
        return before.tag, False, before.id
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
    history = tuple(each for each in before.history if each != image_id) if before else ()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    ImageRecord(tag, image_id, source, stamp, (*history, image_id)).write(directory)
    if before is None or before.id != image_id:
        Pin.clear(directory)
    return tag


def content_id(loaded: LoadedSpec, name: str) -> str:
    """What hub.yaml says NAME is made of: the image reference, or the build's context hash."""
    env = loaded.spec.environments[name]
    if env.image is not None:
        return env.image
    assert env.build is not None
    return context_hash(config_relative(loaded.directory, env.build.context), env.build)


def needs_image(loaded: LoadedSpec, directory: Path, name: str) -> bool:
    """Whether NAME has no recorded image, or one made from other content (and not pinned
    by `env rollback` against the present content)."""
    record = ImageRecord.read(directory)
    if record is None:
        return True
    content = content_id(loaded, name)
    pin = Pin.read(directory)
    if pin is not None and pin.holds(record.id, content):
        return False
    if loaded.spec.environments[name].image is not None:
        return record.tag != content
    return record.source != content


def _matches(image_id: str, wanted: str) -> bool:
    bare = image_id.removeprefix("sha256:")
    wanted = wanted.removeprefix("sha256:")
    return len(wanted) >= 12 and bare.startswith(wanted)


def rollback(client: Any, loaded: LoadedSpec, directory: Path, name: str,
             to: str | None) -> tuple[str, str]:
    """Record the image recorded before the current one (or `to`: an id, at least 12 hex
    digits, or a tag) for new servers, and pin it. Returns (the id before, the id now)."""
    record = ImageRecord.read(directory)
    if record is None:
        raise HubkeeperError(f"environment {name!r} has no image recorded",
                             hint=f"build it first: hubkeeper env build {name}")
    history = list(record.history)
    if to is None:
        earlier = history[:history.index(record.id)]
        if not earlier:
            raise HubkeeperError(
                f"{name}: no image was recorded before the current one ({record.tag})",
                hint="`hubkeeper env list` shows the images kept; choose one with --to")
        target = earlier[-1]
    else:
        found = [each for each in history if _matches(each, to)]
        if not found and _exists(client, to):
            found = [each for each in history if each == client.inspect_image(to)["Id"]]
        if not found:
            raise InvalidInput([Problem(
                "command line", None, None, "--to", f"{to!r} is not an image kept for "
                f"{name}; valid: {', '.join(each[7:19] for each in history)}")])
        target = found[0]
    if not _exists(client, target):
        raise HubkeeperError(f"{name}: image {target} is no longer on this engine",
                             hint="choose another with --to, or build anew: env rebuild")
    repository = image_repository(loaded.spec.hub.name, name)
    tags = client.inspect_image(target).get("RepoTags") or []
    ours = [tag for tag in tags if tag.startswith(repository + ":")]
    tag = (ours or tags or [target])[0]
    source = tag.split(":", 1)[1].split("-")[0] if ours else ""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    ImageRecord(tag, target, source, stamp, record.history).write(directory)
    pin_now(directory, target, content_id(loaded, name))
    return record.id, target


def prune(client: Any, loaded: LoadedSpec, directory: Path, name: str,
          keep: int) -> tuple[list[str], list[str]]:
    """Untag the images beyond `keep` (hubkeeper's own tags only: a pulled image may serve
    others) and forget them; an image a container uses, running or stopped, stays.
    Returns (removed ids, ids kept because in use)."""
    import docker

    record = ImageRecord.read(directory)
    if record is None:
        return [], []
    used = {container.get("ImageID", "") for container in client.containers(all=True)}
    remove, busy = prune_order(list(record.history), record.id, keep, used)
    repository = image_repository(loaded.spec.hub.name, name)
    removed: list[str] = []
    for image_id in remove:
        try:
            tags = client.inspect_image(image_id).get("RepoTags") or []
        except docker.errors.ImageNotFound:
            removed.append(image_id)
            continue
        try:
            for tag in tags:
                if tag.startswith(repository + ":"):
                    client.remove_image(tag)
        except docker.errors.APIError:  # a container made meanwhile: keep it listed
            busy.append(image_id)
            continue
        removed.append(image_id)
    history = tuple(each for each in record.history if each not in removed)
    ImageRecord(record.tag, record.id, record.source, record.built_at, history).write(
        directory)
    return removed, busy


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
