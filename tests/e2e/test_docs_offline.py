"""`/docs` (Swagger UI) and `/redoc` work offline, on an intranet with no Internet: every service serves the
pages' assets itself (from the packaged distribution), the pages name no other host, and the Authorize button's
client-credentials flow gets a token that all three services accept.

The browser test runs headless Chromium (the Debian package `chromium`) against intake served by uvicorn on
loopback, with every host name other than the loopback address made unresolvable, so it proves the page
renders without a network. Without the binary it is skipped (in CI, as root, it is installed first)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from desk.cli import SERVICES
from services.monitoring.app import build_app as build_monitoring
from shared.auth import create_client
from shared.db import make_sessionmaker
from shared.docs import DOCS_ASSETS_URL
from shared.settings import MonitoringSettings
from tests.conftest import KEYRING, app_for
from tests.e2e.harness import QUIET, intake_server

PAGES = ("/docs", "/redoc")
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
CHROMIUM_TIMEOUT = 120
OTHER_HOST = re.compile(r"[a-z]+://[^\s\"'<>]+")


class _Links(HTMLParser):
    """Every URL an HTML page makes the browser load or link to (src, href, ReDoc's spec-url)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href", "spec-url") and value]


def _page_urls(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    # Swagger UI is given its spec in script: `url: '/openapi.json'`
    return parser.urls + re.findall(r"\burl: '([^']*)'", html)


METHODS = {"get", "put", "post", "patch", "delete"}


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) -> operation, the documented webhooks (OpenAPI 3.1, keyed by event type) included."""
    items = {**doc["paths"], **doc.get("webhooks", {})}
    return {(m, path): op for path, item in items.items() for m, op in item.items() if m in METHODS}


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("page", PAGES)
async def test_docs_pages_load_only_same_origin_assets_that_the_service_serves(service: str, page: str) -> None:
    app = app_for(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk.test") as c:
        r = await c.get(page)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        html = r.text
        assert "://" not in html, f"{page} names another host: {OTHER_HOST.findall(html)}"
        urls = _page_urls(html)
        assert any(u.endswith("/openapi.json") for u in urls), urls
        scripts = [u for u in urls if u.endswith(".js")]
        assert scripts and all(u.startswith(f"{DOCS_ASSETS_URL}/") for u in scripts), scripts
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url}: not same-origin"
            asset = await c.get(url)
            assert asset.status_code == 200, url
            expected = CONTENT_TYPES[Path(url).suffix]
            assert asset.headers["content-type"].startswith(expected), (url, asset.headers["content-type"])
            assert len(asset.content) > 0, url
    if page == "/docs":  # Swagger UI: one bundle, one stylesheet, the spec, the favicon
        assert sorted(Path(u).name for u in urls) == [
            "favicon.png",
            "openapi.json",
            "swagger-ui-bundle.js",
            "swagger-ui.css",
        ]
        assert '"persistAuthorization": true' in html
        assert "ui.initOAuth(" in html and "clientSecret" not in html  # nothing secret is pre-filled
    else:
        assert sorted(Path(u).name for u in urls) == ["favicon.png", "openapi.json", "redoc.standalone.js"]


async def test_docs_behind_a_proxy_that_strips_a_prefix_keep_it_on_assets_and_token_url() -> None:
    """With ROOT_PATH (e.g. `/evaluation` behind deploy/'s nginx) the page must ask `/evaluation/docs-assets/...`
    and Authorize must post to `/evaluation/v1/oauth/token`."""
    transport = httpx.ASGITransport(app=app_for("evaluation"), root_path="/evaluation")
    async with httpx.AsyncClient(transport=transport, base_url="http://desk.test") as c:
        for page in PAGES:
            urls = _page_urls((await c.get(f"/evaluation{page}")).text)
            assert urls and all(u.startswith("/evaluation/") for u in urls), urls
            for url in urls:
                assert (await c.get(url)).status_code == 200, url
        doc = (await c.get("/evaluation/openapi.json")).json()
    assert doc["servers"][0] == {"url": "/evaluation"}  # where Try it out sends the operations
    # Swagger UI resolves tokenUrl as a URL: it must carry the prefix to reach the service through the proxy
    assert doc["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == (
        "/evaluation/v1/oauth/token"
    )
    assert (
        app_for("evaluation").openapi()["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"][
            "tokenUrl"
        ]
        == "/v1/oauth/token"
    )  # the committed document is unchanged


@pytest.mark.parametrize("service", SERVICES)
async def test_authorize_is_a_client_credentials_flow_to_the_desk_token_endpoint(service: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(service)), base_url="http://desk.test") as c:
        doc = (await c.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert list(schemes) == ["oauth2"]
    assert schemes["oauth2"]["type"] == "oauth2"
    flows = schemes["oauth2"]["flows"]
    assert list(flows) == ["clientCredentials"]
    # relative: the page asks the service it was loaded from, which serves the same token endpoint
    assert flows["clientCredentials"]["tokenUrl"] == "/v1/oauth/token"
    assert "post" in doc["paths"]["/v1/oauth/token"]
    assert doc["paths"]["/v1/oauth/token"]["post"]["security"] == []


async def test_the_token_swagger_ui_asks_for_is_accepted_by_all_three_services(
    session: Any, client: httpx.AsyncClient, evaluation_client: httpx.AsyncClient, monitoring_client: httpx.AsyncClient
) -> None:
    """What the Authorize dialog sends for a client-credentials flow with no scope ticked: HTTP Basic with the
    typed client id and secret, and the form `grant_type=client_credentials&scope=`."""
    officer, secret = await create_client(session, kind="officer", name="docs officer")
    await session.flush()
    basic = base64.b64encode(f"{officer.client_id}:{secret}".encode()).decode()
    r = await client.post(
        "/v1/oauth/token",
        content="grant_type=client_credentials&scope=",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == set(officer.scopes)  # no scope ticked: all of the client's
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    for c, path in (
        (client, "/v1/partners"),
        (evaluation_client, "/v1/evaluations"),
        (monitoring_client, "/v1/projects"),
    ):
        assert (await c.get(path)).status_code == 401, path
        answer = await c.get(path, headers=bearer)
        assert answer.status_code == 200, (path, answer.text)


async def test_a_wrong_secret_from_a_page_script_gets_no_basic_challenge(
    session: Any, client: httpx.AsyncClient
) -> None:
    """RFC 6749 §5.2 answers a failed HTTP Basic client authentication with a Basic challenge; a browser meets
    it with its own login dialog (headless: the request hangs). Swagger UI marks its token request with
    `X-Requested-With: XMLHttpRequest`: that one gets the 401 problem without the challenge, for the page to show."""
    officer, secret = await create_client(session, kind="officer", name="docs officer")
    await session.flush()
    wrong = base64.b64encode(f"{officer.client_id}:{secret}x".encode()).decode()
    form = {"Authorization": f"Basic {wrong}", "Content-Type": "application/x-www-form-urlencoded"}
    plain = await client.post("/v1/oauth/token", content="grant_type=client_credentials", headers=form)
    assert plain.status_code == 401
    assert plain.headers["www-authenticate"] == 'Basic realm="desk"'
    scripted = await client.post(
        "/v1/oauth/token",
        content="grant_type=client_credentials",
        headers={**form, "X-Requested-With": "XMLHttpRequest"},
    )
    assert scripted.status_code == 401
    assert "www-authenticate" not in scripted.headers
    assert scripted.json()["error"] == "invalid_client"


# ---------------------------------------------------------------- in a real browser


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") != "true" or os.geteuid() != 0:
        pytest.skip(
            "headless Chromium is needed to render /docs: install the Debian package "
            "(`apt-get install -y chromium`); CI installs it in .ci/run"
        )
    done = _apt_get("install", "-y", "-qq", "chromium")
    if done.returncode != 0:  # a stale package list: refresh it once
        _apt_get("update", "-qq")
        done = _apt_get("install", "-y", "-qq", "chromium")
    found = shutil.which("chromium")
    if not found:  # no package repository reachable (an offline machine): nothing to run the page in
        pytest.skip(f"chromium is not installed and `apt-get install -y chromium` failed: {done.stderr[-500:]}")
    return found


async def _dump_dom(binary: str, url: str, profile: Path, budget_ms: int) -> str:
    """The DOM after the page's scripts ran, with no host resolvable but the loopback address (offline)."""
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--dump-dom",
        f"--virtual-time-budget={budget_ms}",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=CHROMIUM_TIMEOUT)
    finally:
        if proc.returncode is None:  # timed out, or the test was interrupted: never leave a browser behind
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return out.decode()


async def _rendered(binary: str, url: str, profile: Path, ready: str) -> str:
    """Chromium's DOM once `ready` is in it. On a loaded machine the first budget may end too soon, or the
    browser may fail to start: one more try, with a longer budget and a fresh profile, before failing."""
    dom = ""
    for attempt, budget in enumerate((10_000, 30_000)):
        try:
            dom = await _dump_dom(binary, url, profile / str(attempt), budget)
        except (AssertionError, TimeoutError):
            if attempt:
                raise
            continue
        if ready in dom:
            break
    return dom


async def test_docs_render_the_operations_and_the_authorize_button_in_headless_chromium(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    binary = _chromium()
    server = intake_server(engine)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as c:
            doc = (await c.get("/openapi.json")).json()
        dom = await _rendered(binary, f"{server.url}/docs", tmp_path / "swagger", 'data-path="/v1/calls"')
        redoc = await _rendered(binary, f"{server.url}/redoc", tmp_path / "redoc", 'data-section-id="operation/')
    finally:
        await server.stop()

    assert "opblock" in dom, dom[-3000:]
    assert 'data-path="/v1/calls"' in dom, dom[-3000:]
    rendered = set(
        re.findall(r'class="opblock opblock-(get|put|post|patch|delete)[ "].*?data-path="([^"]+)"', dom, flags=re.S)
    )
    assert rendered == set(_operations(doc))  # every operation and webhook
    assert re.search(r'<button class="btn authorize[^"]*"[^>]*><span>Authorize</span>', dom), "no Authorize button"
    # ReDoc too: a section per operation, anchored by its operation id
    ids = {op["operationId"] for op in _operations(doc).values() if "operationId" in op}
    sections = set(re.findall(r'data-section-id="operation/([^"]+)"', redoc))
    assert sections == ids, sorted(ids ^ sections)[:10]


# ---------------------------------------------------------------- the Authorize button, clicked


class _DevTools:
    """A minimal Chrome DevTools Protocol client: commands to one page over the browser's websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.session_id: str | None = None

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if self.session_id:
            message["sessionId"] = self.session_id
        await self.ws.send(json.dumps(message))
        while True:  # events of the page come in between: skip them
            answer = json.loads(await self.ws.recv())
            if answer.get("id") == self.next_id:
                assert "error" not in answer, (method, answer["error"])
                return dict(answer["result"])

    async def open(self, url: str) -> None:
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        self.session_id = attached["sessionId"]
        await self.send("Page.navigate", url=url)

    async def evaluate(self, script: str) -> Any:
        got = await self.send("Runtime.evaluate", expression=script, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in got, got["exceptionDetails"]
        return got["result"].get("value")


# What an officer does in /docs: Authorize, type the client's id and secret, tick no scope, Authorize; then wait
# for `expect` ('token': the dialog offers Logout, and is closed; 'error': the dialog shows the error).
# Inputs are React-controlled: set through the native setter, then tell React with an input event.
AUTHORIZE_SCRIPT = """
(async (clientId, clientSecret, expect) => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const errors = () => [...document.querySelectorAll('.modal-ux .errors')].map(e => e.textContent).join(' ');
  const until = async (probe, what) => {
    for (const t0 = Date.now(); ; await sleep(50)) {
      const got = probe();
      if (got) return got;
      if (Date.now() - t0 > 30000) throw new Error('timed out waiting for ' + what + ' (errors: ' + errors() + ')');
    }
  };
  const type = (input, value) => {
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(input, value);
    input.dispatchEvent(new Event('input', {bubbles: true}));
  };
  const button = (root, text) => [...root.querySelectorAll('button')].find(b => b.textContent.trim() === text);
  if (!document.querySelector('.modal-ux')) {
    (await until(() => document.querySelector('button.btn.authorize'), 'the Authorize button')).click();
  }
  const dialog = await until(() => document.querySelector('.modal-ux'), 'the dialog');
  type(await until(() => dialog.querySelector('input[data-name="clientId"]'), 'client_id'), clientId);
  type(dialog.querySelector('input[data-name="clientSecret"]'), clientSecret);
  button(dialog, 'Authorize').click();
  if (expect === 'token') {
    await until(() => button(dialog, 'Logout'), 'the token');
    button(dialog, 'Close').click();
  } else {
    await until(() => errors(), 'the error');
  }
  return {errors: errors() || null, stored: localStorage.getItem('authorized'),
          locked: !!document.querySelector('button.btn.authorize.locked')};
})
"""


async def test_authorize_in_headless_chromium_shows_a_wrong_secret_and_gets_a_token_another_service_accepts(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    import websockets

    binary = _chromium()
    async with make_sessionmaker(engine)() as s:
        officer, secret = await create_client(s, kind="officer", name="docs officer (browser)")
        await s.commit()
    server = intake_server(engine)
    await server.start()
    profile = tmp_path / "profile"
    browser = await asyncio.create_subprocess_exec(
        binary,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--remote-debugging-port=0",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"  # Chromium writes its debugging port and path there
        for _ in range(600):
            if active.exists() and len(lines := active.read_text().split()) == 2:
                break
            assert browser.returncode is None, f"chromium exited {browser.returncode}"
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("chromium did not open its debugging port within 30 s")
        port, path = lines
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as ws:
            tools = _DevTools(ws)
            await tools.open(f"{server.url}/docs")

            async def authorize(client_secret: str, expect: str) -> dict[str, Any]:
                args = json.dumps([officer.client_id, client_secret, expect])[1:-1]
                return dict(await asyncio.wait_for(tools.evaluate(f"{AUTHORIZE_SCRIPT}({args})"), timeout=60))

            mistyped = await authorize(secret + "x", "error")  # shown in the dialog, no browser login prompt
            got = await authorize(secret, "token")
    finally:
        if browser.returncode is None:
            browser.kill()
        await browser.wait()
        await server.stop()

    assert "invalid_client" in mistyped["errors"], mistyped
    assert mistyped["stored"] is None and not mistyped["locked"]
    assert got["errors"] is None, got["errors"]
    assert got["locked"], "the Authorize button does not show the page as authorized"
    stored = json.loads(got["stored"])  # persistAuthorization: kept in the page's local storage
    token = stored["oauth2"]["token"]["access_token"]
    assert set(stored["oauth2"]["token"]["scope"].split()) == set(officer.scopes)
    monitoring = build_monitoring(MonitoringSettings(**QUIET))
    monitoring.state.keyring = KEYRING
    monitoring.state.sessionmaker = make_sessionmaker(engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=monitoring), base_url="http://desk.test") as c:
        r = await c.get("/v1/projects", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
