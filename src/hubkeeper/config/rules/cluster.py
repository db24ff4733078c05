"""What keeps a hub.yaml from running on Kubernetes."""

from __future__ import annotations

from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules import Found

# What the cluster cannot take from hub.yaml, with what to write instead.
KUBERNETES_AUTH = ("shared-password", "native", "github")


def kubernetes_problems(spec: HubSpec) -> Found:
    """What keeps hub.yaml from running on Kubernetes: things of this machine (Linux
    passwords, local builds, host folders, commands the hub runs). `check` reports them for
    backend kubernetes; `export z2jh` for any backend."""
    problems: Found = []
    kinds = ", ".join(KUBERNETES_AUTH)
    if spec.auth.kind not in KUBERNETES_AUTH:
        why = {None: "the default login (pam or shared-password) depends on this machine",
               "pam": "pam checks this machine's Linux passwords, which the cluster's hub "
                      "cannot see",
               "dummy": "dummy accepts any password, and a cluster's hub is public"}
        problems.append((("auth", "kind"), f"{why[spec.auth.kind]}; on Kubernetes choose "
                         f"one of {kinds}"))
    if spec.hub.mode == "personal":
        problems.append((("hub", "mode"), "personal runs every server as one account of "
                         "this machine; on Kubernetes each user gets a pod: remove it"))
    if spec.users.account_prefix:
        problems.append((("users", "account_prefix"), "there are no Linux accounts on the "
                         "cluster; remove it"))
    if spec.web.enabled:
        problems.append((("web", "enabled"), "the student's page needs `hubkeeper up`'s root "
                         "helper on the machine holding the homes and snapshots; on "
                         "Kubernetes set it to false"))
    if not spec.environments:
        problems.append((("environments",), "a cluster starts servers from images: declare "
                         "at least one environment with image: (pushed to a registry the "
                         "cluster pulls from)"))
    for name, env in spec.environments.items():
        if env.image is None:
            problems.append((("environments", name), "needs image: an image in a registry "
                             "the cluster pulls from, with jupyterhub-singleuser on its PATH "
                             "(for backend local: build one with its packages and push it)"))
        for key, instead in (("build", "build and push it, then give image:"),
                             ("packages", "install them in the image"),
                             ("r", "install R and IRkernel in the image"),
                             ("requirements", "install them in the image"),
                             ("server_config", "put it in the image's "
                              "jupyter_server_config.py"),
                             ("home_template", "put the files in the image and give "
                              "starter_files:")):
            if getattr(env, key):
                problems.append((("environments", name, key),
                                 f"not possible on a cluster (it is on this machine): "
                                 f"{instead}"))
    if spec.materials:
        problems.append((("materials",), "materials are pulled by this machine into homes "
                         "on its disks; on Kubernetes give students nbgitpuller links (or put "
                         "the material in the image) and remove it here"))
    for index, service in enumerate(spec.services):
        problems.append((("services", index), f"services are programs of this machine; on "
                         f"Kubernetes run {service.name!r} as its own Deployment and "
                         "remove it here"))
    return problems
