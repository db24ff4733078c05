"""A learning management system (an LTI 1.3 platform) for tests, and a browser that follows
its launches.

No LMS can run here, so this one speaks the real protocol over HTTP on 127.0.0.1 (LTI 1.3
Core and 1EdTech Security Framework 1.0): its own RSA key pair and a JWKS endpoint; the
third-party-initiated login (an auto-submitting form POST to the tool's OIDC login URL with
iss, login_hint, target_link_uri, lti_message_hint, client_id, lti_deployment_id); an
authorization endpoint that checks the tool's authentication request (response_type
id_token, scope openid, response_mode form_post, prompt none, the registered client_id and
redirect_uri, the hints echoed) and answers with the auto-submitting form that posts a
signed id_token (RS256, nonce echoed; the LtiResourceLinkRequest claims) and the state to
the tool's redirect URI.

`LTIUser` is `SimUser` logging in the way a browser follows a launch: it posts each form
the pages give it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from yarl import URL

from tests.support.hubproc import free_ports
from tests.support.simuser import SimUser, SimUserError, _excerpt

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
LEARNER = [MEMBERSHIP + "Learner",
           "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"]
INSTRUCTOR = [MEMBERSHIP + "Instructor",
              "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Faculty"]


@dataclass(frozen=True)
class Launch:
    """One launch the platform will sign: who, from which course, with which roles."""

    hub: str  # the tool's base URL, e.g. http://127.0.0.1:8000/
    sub: str
    email: str | None
    roles: tuple[str, ...]
    context: str | None
    forged: bool = False  # signed with a key the platform's JWKS does not hold
    custom: tuple[tuple[str, str], ...] = ()  # the launch's custom parameters


@dataclass
class LTIPlatform:
    client_id: str = "hubkeeper-test-tool"
    deployment_id: str = "1:test-deployment"
    port: int = 0
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    forger: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    kid: str = "platform-key-1"
    launches: dict[str, Launch] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # requests the platform refused
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def authorize_url(self) -> str:
        return f"{self.issuer}/api/lti/authorize_redirect"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/api/lti/security/jwks"

    def hub_yaml(self, courses: tuple[str, ...] = ("course-101",), indent: str = "  ") -> str:
        """The auth.lti13 section's body for this platform."""
        lines = [f"issuer: {self.issuer}", f"client_id: {self.client_id}",
                 f"authorize_url: {self.authorize_url}", f"jwks_url: {self.jwks_url}",
                 f"courses: [{', '.join(courses)}]"]
        return "".join(f"{indent}{line}\n" for line in lines)

    def launch_url(self, hub: str, sub: str, email: str | None, *,
                   roles: list[str] = LEARNER, context: str | None = "course-101",
                   forged: bool = False, custom: dict[str, str] | None = None) -> str:
        """Where a person clicks the tool's link in their course."""
        launch_id = uuid.uuid4().hex
        self.launches[launch_id] = Launch(hub if hub.endswith("/") else hub + "/", sub, email,
                                          tuple(roles), context, forged,
                                          tuple((custom or {}).items()))
        return f"{self.issuer}/courses/launch/{launch_id}"

    # -- the server

    def start(self) -> LTIPlatform:
        self.port = free_ports(1)[0]
        app = web.Application()
        app.router.add_get("/courses/launch/{launch}", self._launch)
        app.router.add_get("/api/lti/authorize_redirect", self._authorize)
        app.router.add_post("/api/lti/authorize_redirect", self._authorize)
        app.router.add_get("/api/lti/security/jwks", self._jwks)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="lti-platform", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the test LTI platform did not start within 30 s")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop, runner = self._loop, self._runner

        async def close() -> None:
            if runner is not None:
                await runner.cleanup()
            loop.stop()

        asyncio.run_coroutine_threadsafe(close(), loop)
        self._thread.join(30)
        loop.close()
        self._loop = self._thread = None

    async def _jwks(self, request: web.Request) -> web.Response:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, alg="RS256", use="sig")
        return web.json_response({"keys": [jwk]})

    async def _launch(self, request: web.Request) -> web.Response:
        """The course page's link: the third-party-initiated login, as an auto-submitting
        form to the tool's OIDC login URL (what Canvas and Moodle send)."""
        launch_id = request.match_info["launch"]
        launch = self.launches.get(launch_id)
        if launch is None:
            return web.Response(status=404, text="no such launch")
        fields = {"iss": self.issuer, "login_hint": launch.sub,
                  "target_link_uri": launch.hub + "hub/", "lti_message_hint": launch_id,
                  "client_id": self.client_id, "lti_deployment_id": self.deployment_id}
        return _form_page(launch.hub + "hub/lti13/oauth_login", fields)

    def _refuse(self, message: str) -> web.Response:
        self.errors.append(message)
        return web.Response(status=400, text=message)

    async def _authorize(self, request: web.Request) -> web.Response:
        args: dict[str, str] = dict(request.query)
        if request.method == "POST":
            args.update({k: str(v) for k, v in (await request.post()).items()})
        expected = {"response_type": "id_token", "scope": "openid",
                    "response_mode": "form_post", "prompt": "none",
                    "client_id": self.client_id}
        for key, value in expected.items():
            if args.get(key) != value:
                return self._refuse(f"{key} must be {value!r}, not {args.get(key)!r}")
        launch = self.launches.get(args.get("lti_message_hint", ""))
        if launch is None:
            return self._refuse("lti_message_hint is not a launch of this platform")
        if args.get("login_hint") != launch.sub:
            return self._refuse("login_hint is not the launch's user")
        registered = launch.hub + "hub/lti13/oauth_callback"
        if args.get("redirect_uri") != registered:
            return self._refuse(f"redirect_uri {args.get('redirect_uri')!r} is not the "
                                f"registered {registered!r}")
        for key in ("nonce", "state"):
            if not args.get(key):
                return self._refuse(f"{key} is missing")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.client_id, "azp": self.client_id,
            "sub": launch.sub, "iat": now, "exp": now + 300, "nonce": args["nonce"],
            "name": f"Test {launch.sub}",
            LTI + "message_type": "LtiResourceLinkRequest",
            LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id,
            LTI + "target_link_uri": launch.hub + "hub/",
            LTI + "resource_link": {"id": "notebooks-link", "title": "Notebooks"},
            LTI + "roles": list(launch.roles),
        }
        if launch.email is not None:
            claims["email"] = launch.email
        if launch.custom:
            claims[LTI + "custom"] = dict(launch.custom)
        if launch.context is not None:
            claims[LTI + "context"] = {
                "id": launch.context, "label": launch.context.upper(),
                "title": f"Course {launch.context}",
                "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"]}
        key = self.forger if launch.forged else self.key
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})
        return _form_page(registered, {"id_token": token, "state": args["state"]})


def _form_page(action: str, fields: dict[str, str]) -> web.Response:
    from html import escape

    inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                     for k, v in fields.items())
    body = (f'<!doctype html><html><body onload="document.forms[0].submit()">'
            f'<form method="post" action="{escape(action)}">{inputs}'
            "<noscript><button>Continue</button></noscript></form></body></html>")
    return web.Response(text=body, content_type="text/html")


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action, self.method = values.get("action", ""), values.get("method", "get")
        elif tag == "input" and self.action is not None and "name" in values:
            self.fields[values["name"]] = values.get("value", "")


def auto_form(page: str) -> tuple[str, dict[str, str]] | None:
    """The action and fields of a page's auto-submitting POST form; None without one."""
    parser = _FormParser()
    parser.feed(page)
    if parser.action is None or parser.method.lower() != "post":
        return None
    return parser.action, parser.fields


class LTIUser(SimUser):
    """A student who opens the hub from their course: `login` follows the launch like a
    browser (GET the course link, post each auto-submitting form, follow redirects) and
    stops at the hub's last redirect, logged in."""

    def __init__(self, base_url: str, name: str, launch_url: str) -> None:
        super().__init__(base_url, name, "")
        self.launch_url = launch_url

    async def login(self) -> None:
        began = time.monotonic()
        status, page = await launch(self.session, self.launch_url)
        if status not in (302, 303):
            raise SimUserError(f"login refused: HTTP {status} {_excerpt(page, 400)}")
        self.timings.login = time.monotonic() - began


async def launch(session: aiohttp.ClientSession, url: str, steps: int = 4) -> tuple[int, str]:
    """Follow a launch from the course link at `url` as a browser does: post each
    auto-submitting form, follow the redirects to the platform. Returns the status and text
    of the hub's last answer: a redirect to its pages when it let the person in."""
    platform = str(URL(url).origin())
    async with session.get(url) as response:
        status, page = response.status, await response.text()
    for _ in range(steps):
        form = auto_form(page) if status == 200 else None
        if form is None:
            return status, page
        action, fields = form
        async with session.post(action, data=fields, allow_redirects=False) as response:
            status, page = response.status, await response.text()
            target = response.url.join(URL(response.headers.get("Location", "")))
        if status not in (301, 302, 303) or str(target.origin()) != platform:
            return status, page  # the hub's answer: its own page, an error, or logged in
        async with session.get(target) as response:  # to the platform's authorization
            status, page = response.status, await response.text()
    raise SimUserError(f"the launch did not end after {steps} forms")
