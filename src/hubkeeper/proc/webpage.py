"""hubkeeper's web service at <hub>/services/hubkeeper/: the student's page (`me/`) and the
place of the instructor's page (admins only).

JupyterHub runs it (render/hubkeeper_services.py) as the unprivileged web account, never
root, with `python -m hubkeeper.proc.webpage`. Users log in through the hub's OAuth
(`HubOAuthenticated`); every form is XSRF-checked (JupyterHub's tokens, tornado's
xsrf_cookies). The page never takes a user from the URL or a form: each request to the
root helper (lifecycle/webhelper.py, over the socket in HUBKEEPER_HELPER_SOCKET) names the
user the hub's OAuth verified, and the helper checks that name again.

Routes, under the service's prefix:
    ""                  admins only (403 for others): the instructor's page
    roster              POST a roster CSV: its problems by line, or the plan to apply
    action              POST action=... and its fields: started as a job (lifecycle/webjobs.py)
    job                 ?id=J: one job's progress and result
    me/                 the user's snapshots; ?snapshot=S&path=P: one folder in one of them
    me/download         ?snapshot=S&path=P: one file of it
    me/restore          POST snapshot, path, replace: back into the home, as the user
    me/export           the whole live home as a zip
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import urllib.parse
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web
from tornado.ioloop import IOLoop

from hubkeeper.host.helpersock import Answer, HelperError, ask, ask_json

log = logging.getLogger("hubkeeper.web")
TEMPLATES = Path(__file__).with_name("web_templates")
T = TypeVar("T")
MAX_ROSTER = 1024 * 1024  # the helper's limit too (lifecycle/webadmin.py)


def day_of(snapshot_id: str) -> str:
    """20261206T031500 -> 2026-12-06 03:15 (UTC)."""
    try:
        when = dt.datetime.strptime(snapshot_id, "%Y%m%dT%H%M%S")
    except ValueError:
        return snapshot_id
    return when.strftime("%Y-%m-%d %H:%M UTC")


def size_text(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


class Page(HubOAuthenticated, web.RequestHandler):
    """A logged-in hub user's request; `user` is the name the hub's OAuth verified."""

    @property
    def user(self) -> str:
        return self.current_user["name"]

    @property
    def helper(self) -> Path:
        return self.settings["helper_socket"]

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await IOLoop.current().run_in_executor(None, fn, *args)

    async def ask(self, op: str, **fields: Any) -> dict[str, Any]:
        return await self.blocking(ask_json, self.helper, {"op": op, "user": self.user,
                                                           **fields})

    async def send_download(self, op: str, filename: str, content_type: str,
                            **fields: Any) -> None:
        answer: Answer = await self.blocking(ask, self.helper,
                                             {"op": op, "user": self.user, **fields})
        try:
            self.set_header("Content-Type", content_type)
            quoted = urllib.parse.quote(filename)
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quoted}")
            self.set_header("Content-Length", str(answer.size))
            self.set_header("Cache-Control", "no-store")
            chunks = answer.chunks()
            while (chunk := await self.blocking(next, chunks, b"")):
                self.write(chunk)
                await self.flush()
        finally:
            answer.close()

    def refused(self, status: int, message: str) -> None:
        self.set_status(status)
        self.render("error.html", message=message, prefix=self.settings["prefix"])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason if status_code != 500 else "something went wrong"
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, web.HTTPError) and error.log_message and status_code < 500:
            reason = error.log_message  # ours, or tornado's and JupyterHub's (XSRF)
        self.render("error.html", message=f"{status_code}: {reason}",
                    prefix=self.settings["prefix"])


class AdminPage(Page):
    """The instructor's page: at a glance, the roster, the actions, the recent jobs."""

    def check_admin(self) -> None:
        if not self.current_user.get("admin"):
            raise web.HTTPError(403, "this page is for the hub's admins")

    async def ask_admin(self, op: str, **fields: Any) -> dict[str, Any]:
        return await self.blocking(ask_json, self.helper, {"op": op, "admin": self.user,
                                                           **fields})

    @web.authenticated
    async def get(self) -> None:
        self.check_admin()
        try:
            seen = await self.ask_admin("glance")
            jobs = (await self.ask_admin("jobs"))["jobs"]
        except HelperError as exc:
            return self.refused(500, str(exc))
        self.render("admin.html", user=self.user, prefix=self.settings["prefix"], seen=seen,
                    jobs=jobs[:15], size_text=size_text, age_text=age_text)


class RosterUpload(AdminPage):
    """POST a CSV: its problems by line, or the plan and a button to apply it."""

    @web.authenticated
    async def post(self) -> None:
        self.check_admin()
        files = self.request.files.get("roster") or []
        if not files:
            return self.refused(400, "choose a CSV file to upload")
        upload = files[0]
        if len(upload["body"]) > MAX_ROSTER:
            return self.refused(400, f"a roster is at most {MAX_ROSTER // 1024} KiB")
        try:
            text = upload["body"].decode("utf-8-sig")
        except UnicodeDecodeError:
            return self.refused(400, f"{upload['filename']} is not UTF-8 text")
        try:
            checked = await self.ask_admin("roster-check", csv=text,
                                           filename=upload["filename"][:200] or "roster.csv")
        except HelperError as exc:
            return self.refused(400, str(exc))
        self.render("roster.html", prefix=self.settings["prefix"], filename=upload["filename"],
                    checked=checked)


class Action(AdminPage):
    """POST an action (webadmin.ACTIONS) with its fields: it starts as a job."""

    FIELDS = {"roster": ("upload",), "add": ("name", "groups"), "lock": ("name",),
              "unlock": ("name",), "password": ("name",), "prewarm": ("group",),
              "snapshot": (), "archive": (), "rebuild": ("environment",)}

    @web.authenticated
    async def post(self) -> None:
        self.check_admin()
        action = self.get_argument("action", "")
        if action not in self.FIELDS:
            return self.refused(400, f"unknown action {action[:40]!r}")
        args: dict[str, Any] = {key: self.get_argument(key, "").strip()
                                for key in self.FIELDS[action]}
        if "groups" in args:
            args["groups"] = [g for g in args["groups"].replace(";", ",").split(",")
                              if g.strip()]
            args["groups"] = [g.strip() for g in args["groups"]]
        try:
            job = (await self.ask_admin("start", action=action, args=args))["job"]
        except HelperError as exc:
            return self.refused(400, str(exc))
        self.redirect(f"{self.settings['prefix']}job?id={urllib.parse.quote(job['id'])}")


class JobPage(AdminPage):
    @web.authenticated
    async def get(self) -> None:
        self.check_admin()
        try:
            job = (await self.ask_admin("job", id=self.get_argument("id", "")))["job"]
        except HelperError as exc:
            return self.refused(404, str(exc))
        self.set_header("Cache-Control", "no-store")
        self.render("job.html", prefix=self.settings["prefix"], job=job)


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "none yet"
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{int(seconds)} seconds ago"


class MyPage(Page):
    @web.authenticated
    async def get(self) -> None:
        snapshot = self.get_argument("snapshot", "")
        path = self.get_argument("path", "")
        try:
            found = (await self.ask("snapshots"))["snapshots"]
            entries = (await self.ask("list", snapshot=snapshot, path=path))["entries"] \
                if snapshot else []
        except HelperError as exc:
            return self.refused(404, str(exc))
        parts = PurePosixPath(path).parts if path else ()
        crumbs = [("/".join(parts[:i + 1]), part) for i, part in enumerate(parts)]
        self.render("me.html", user=self.user, snapshots=found, snapshot=snapshot,
                    path=path, entries=entries, crumbs=crumbs, day_of=day_of,
                    size_text=size_text, join=lambda *p: "/".join(x for x in p if x),
                    quote=urllib.parse.quote, restored=self.get_argument("restored", ""),
                    prefix=self.settings["prefix"])


class Download(Page):
    @web.authenticated
    async def get(self) -> None:
        path = self.get_argument("path", "")
        try:
            await self.send_download("read", PurePosixPath(path).name or "file",
                                     "application/octet-stream",
                                     snapshot=self.get_argument("snapshot", ""), path=path)
        except HelperError as exc:
            self.clear_header("Content-Disposition")
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            return self.refused(404, str(exc))


class Restore(Page):
    @web.authenticated
    async def post(self) -> None:
        snapshot = self.get_argument("snapshot", "")
        path = self.get_argument("path", "")
        replace = self.get_argument("replace", "") == "yes"
        try:
            done = await self.ask("restore", snapshot=snapshot, path=path, replace=replace)
        except HelperError as exc:
            return self.refused(400, str(exc))
        log.info("%s restored %s from %s (replace: %s) as %s", self.user, path, snapshot,
                 replace, done.get("written"))
        parent = str(PurePosixPath(path).parent) if "/" in path else ""
        query = urllib.parse.urlencode({"snapshot": snapshot, "path": parent,
                                        "restored": done.get("written", path)})
        self.redirect(f"{self.settings['prefix']}me/?{query}")


class Export(Page):
    @web.authenticated
    async def get(self) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        try:
            await self.send_download("export", f"{self.user}-{stamp}.zip", "application/zip")
        except HelperError as exc:
            self.clear_header("Content-Disposition")
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            return self.refused(500, str(exc))


def make_app(prefix: str, helper_socket: Path) -> web.Application:
    return web.Application(
        [
            (prefix, AdminPage),
            (prefix + "roster", RosterUpload),
            (prefix + "action", Action),
            (prefix + "job", JobPage),
            (prefix + "oauth_callback", HubOAuthCallbackHandler),
            (prefix + "me/", MyPage),
            (prefix + "me/download", Download),
            (prefix + "me/restore", Restore),
            (prefix + "me/export", Export),
        ],
        template_path=str(TEMPLATES),
        cookie_secret=secrets.token_bytes(32),  # per start: sessions go with the process
        xsrf_cookies=True,
        helper_socket=helper_socket,
        prefix=prefix,
    )


async def serve() -> None:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/hubkeeper/")
    url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    app = make_app(prefix, Path(os.environ["HUBKEEPER_HELPER_SOCKET"]))
    app.listen(url.port or 80, url.hostname or "127.0.0.1", xheaders=True)
    log.info("hubkeeper's web pages at %s on %s (uid %s)", prefix, url.netloc, os.getuid())
    await asyncio.Event().wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s "
                        "hubkeeper-web] %(message)s")
    if os.geteuid() == 0:
        raise SystemExit("hubkeeper's web service does not run as root")
    with contextlib.suppress(KeyboardInterrupt):  # the hub stopping its services
        asyncio.run(serve())


if __name__ == "__main__":
    main()
