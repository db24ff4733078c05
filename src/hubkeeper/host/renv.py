"""The R part of an environment's build (environments.<name>.r): Debian's R, IRkernel and
r-cran-* packages (machine-wide, installed by apt-get as root when missing), CRAN packages
in the build's own R library, and the build's `ir` kernelspec.

    <build>/R/library/                      CRAN packages of this build (R_LIBS of the kernel)
    <build>/share/jupyter/kernels/ir/       the kernelspec: only this build's servers see it

Debian's r-cran-irkernel also puts an `ir` kernelspec in /usr/share/jupyter/kernels, which
every Jupyter on the machine would list; the servers of environments do not look there
(hub/spawner_steps.environment_kernel_dirs), so R is offered only where hub.yaml asks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.whoami import effective_uid

R_BASE = ("r-base-core", "r-cran-irkernel")  # R itself and the kernel, always
LIBRARY = Path("R") / "library"  # inside the build
KERNEL_NAME = "ir"
IRKERNEL_FILES = Path("/usr/lib/R/site-library/IRkernel/kernelspec")  # its logos
APT_LOCK_WAIT = 600  # seconds apt-get waits for another apt/dpkg to finish

Run = Callable[[list[str]], tuple[int, list[str]]]  # argv -> (status, last output lines)

# Runs in Rscript with: repository, library, package names. Exit 3: the repository does
# not answer; 4: packages it does not have; 5: installed but not loadable.
CRAN_SCRIPT = """
args <- commandArgs(trailingOnly = TRUE)
repo <- args[1]; lib <- args[2]; pkgs <- args[-(1:2)]
options(timeout = 30, warn = 1)
index <- tryCatch(available.packages(repos = repo), error = function(e) NULL)
if (is.null(index) || nrow(index) == 0) {
  message("hubkeeper: the CRAN repository ", repo, " cannot be reached from this machine")
  quit(status = 3)
}
absent <- setdiff(pkgs, rownames(index))
if (length(absent)) {
  message("hubkeeper: ", repo, " has no package ", paste(absent, collapse = ", "))
  quit(status = 4)
}
install.packages(pkgs, lib = lib, repos = repo,
                 dependencies = c("Depends", "Imports", "LinkingTo"))
loads <- vapply(pkgs, function(p) requireNamespace(p, lib.loc = c(lib, .libPaths()),
                                                   quietly = TRUE), logical(1))
if (!all(loads)) {
  message("hubkeeper: not installed: ", paste(pkgs[!loads], collapse = ", "))
  quit(status = 5)
}
"""


@dataclass(frozen=True)
class RSource:
    """What hub.yaml asks of an environment's R."""

    packages: tuple[str, ...]  # R names; from Debian's r-cran-<lower case>
    cran: tuple[str, ...]
    cran_repository: str

    def identity(self) -> dict[str, object]:
        """The part of the build's content hash (the lists, not the versions Debian has)."""
        return {"debian": debian_names(self), "cran": list(self.cran),
                "cran_repository": self.cran_repository}


def debian_names(source: RSource) -> list[str]:
    return [*R_BASE, *(f"r-cran-{name.lower()}" for name in source.packages)]


def installed_versions(names: list[str]) -> dict[str, str | None]:
    """dpkg's installed version of each package, None where it is not installed."""
    found: dict[str, str | None] = dict.fromkeys(names)
    listing = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Version}\n", *names],
        capture_output=True, text=True, check=False).stdout
    for line in listing.splitlines():
        name, status, version = (line.split("\t") + ["", ""])[:3]
        if name in found and status.endswith(" installed"):
            found[name] = version
    return found


def apt_candidates(names: list[str]) -> dict[str, str | None]:
    """The version apt would install of each package (None: apt knows no such package)."""
    found: dict[str, str | None] = dict.fromkeys(names)
    listing = subprocess.run(["apt-cache", "policy", *names], capture_output=True,
                             text=True, check=False, env={"PATH": "/usr/bin:/bin",
                                                          "LANG": "C"}).stdout
    package = None
    for line in listing.splitlines():
        if re.match(r"^\S+:$", line):
            package = line[:-1]
        elif package in found and line.strip().startswith("Candidate:"):
            candidate = line.split(":", 1)[1].strip()
            found[package] = None if candidate == "(none)" else candidate
    return found


def ensure_debian(name: str, source: RSource, run: Run,
                  progress: Callable[[str], None]) -> dict[str, str]:
    """Install the environment's Debian packages that are missing (as root, without
    recommends); returns each package's installed version."""
    wanted = debian_names(source)
    missing = [package for package, version in installed_versions(wanted).items()
               if version is None]
    if missing:
        unknown = [package for package, candidate in apt_candidates(missing).items()
                   if candidate is None]
        if unknown:
            raise HubkeeperError(
                f"building environment {name!r} failed: Debian has no package "
                f"{', '.join(unknown)} (apt-cache policy knows none)",
                hint=f"check the names under environments.{name}.r.packages (R names: "
                "r-cran-<name in lower case> must exist in Debian); a package Debian lacks "
                "goes under r.cran; if the package lists are old, run apt-get update")
        if effective_uid() != 0:
            raise HubkeeperError(
                f"building environment {name!r} needs the Debian packages "
                f"{', '.join(missing)}, and only root installs them",
                hint="as root: apt-get install --no-install-recommends " + " ".join(missing))
        progress(f"== {name}: installing Debian packages {', '.join(missing)}")
        argv = ["/usr/bin/env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install",
                "-y", "-q", "--no-install-recommends",
                "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT}", *missing]
        status, tail = run(argv)
        if status != 0:
            raise HubkeeperError(
                f"building environment {name!r} failed (apt-get install exited "
                f"{status}):\n  " + "\n  ".join(tail),
                hint="the current build is unchanged")
    versions = installed_versions(wanted)
    absent = [package for package, version in versions.items() if version is None]
    if absent:
        raise HubkeeperError(f"building environment {name!r} failed: {', '.join(absent)} "
                             "not installed after apt-get install",
                             hint="see `dpkg -l " + " ".join(absent) + "`")
    return {package: str(version) for package, version in versions.items()}


def install_cran(name: str, source: RSource, library: Path, run: Run) -> None:
    if not source.cran:
        return
    rscript = shutil.which("Rscript", path="/usr/bin:/bin") or "Rscript"
    status, tail = run([rscript, "--no-save", "--no-restore", "-e", CRAN_SCRIPT,
                        source.cran_repository, str(library), *source.cran])
    if status != 0:
        why = {3: "the CRAN repository cannot be reached",
               4: "the repository lacks a package",
               5: "a package did not install"}.get(status, f"Rscript exited {status}")
        raise HubkeeperError(
            f"building environment {name!r} failed: {why} "
            f"({source.cran_repository}):\n  " + "\n  ".join(tail[-12:]),
            hint=f"list packages Debian has under environments.{name}.r.packages instead "
            "of r.cran (Debian's r-cran-*), or set r.cran_repository to a repository this "
            "machine reaches; the current build is unchanged")


def cran_versions(library: Path) -> dict[str, str]:
    """Each package in the build's library and its version (from its DESCRIPTION)."""
    versions: dict[str, str] = {}
    for description in sorted(library.glob("*/DESCRIPTION")):
        match = re.search(r"^Version:\s*(\S+)", description.read_text(errors="replace"),
                          re.MULTILINE)
        versions[description.parent.name] = match.group(1) if match else "?"
    return versions


def write_kernelspec(build: Path, library: Path) -> Path:
    """<build>/share/jupyter/kernels/ir: R with IRkernel, the build's library first."""
    r_program = shutil.which("R", path="/usr/bin:/bin") or "/usr/bin/R"
    folder = build / "share" / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [r_program, "--no-echo", "--no-save", "--no-restore",
                     "-e", "IRkernel::main()", "--args", "{connection_file}"],
            "display_name": "R", "language": "R",
            "env": {"R_LIBS": str(library)}}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
    for logo in ("logo-64x64.png", "logo-svg.svg"):
        if (IRKERNEL_FILES / logo).is_file():
            shutil.copyfile(IRKERNEL_FILES / logo, folder / logo)
    return folder


def build_r(name: str, source: RSource, build: Path, debian: dict[str, str],
            run: Run) -> list[str]:
    """The R part of the build at `build` (a venv already made, the Debian packages in
    place: `debian` is ensure_debian's answer); returns the lock file's R lines (comments,
    so the lock stays a pip requirements file)."""
    library = build / LIBRARY
    library.mkdir(parents=True, exist_ok=True)
    os.chmod(library, 0o755)
    install_cran(name, source, library, run)
    write_kernelspec(build, library)
    lines = ["# R: Debian packages (machine-wide; dpkg-query)"]
    lines += [f"# {package}=={version}" for package, version in debian.items()]
    cran = cran_versions(library)
    if cran:
        lines.append(f"# R: CRAN packages in {LIBRARY} (from {source.cran_repository})")
        lines += [f"# cran:{package}=={version}" for package, version in cran.items()]
    return lines
