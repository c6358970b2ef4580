"""A real Spark app in a real browser: the test app built with vite, Debian's Chromium driven by Playwright.

- `built_app(config, tmp_path_factory)` copies tests/e2e/spark_app/ into a temp folder (the app's
  repository: `runtime.config.json` beside `dist/`), links tools/node's modules in as its `node_modules/`
  and runs `vite build` there, once per test session.
- `start_suite(request, directory, app, env)` starts the suite serving it (`SPARK_APP_DIR`), on SQLite or on
  a Redis database of its own as the fixture's param says.
- `chromium()` / `launch_chromium(playwright)` start `/usr/bin/chromium` (Debian's package, which `make
  test-deps` installs) through Playwright's Python API with `executable_path`: the tests never download a
  browser. `open_app`, `app_ready` and `increment` drive the test app's page.
- `ViteDevServer` runs `vite` (dev) on the app with `GITHUB_API_URL` and `GITHUB_TOKEN`, as a Spark
  developer does, so that the Spark plugin proxies `/_spark/*` to `${GITHUB_API_URL}/runtime/{app}/*`.
- `OtherSite` serves a few HTML pages from another origin (a second local HTTP server) for the cross-site tests.

Node comes from PATH (the machine image's); vite and everything the app imports from tools/node.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.support.ports import HOST, free_port
from tests.support.processes import terminate
from tests.support.redis_server import RedisServer
from tests.support.suite import ROOT, RunningSuite

APP_SOURCE = ROOT / "tests" / "e2e" / "spark_app"
NODE_MODULES = ROOT / "tools" / "node" / "node_modules"
VITE = NODE_MODULES / "vite" / "bin" / "vite.js"
CHROMIUM = Path("/usr/bin/chromium")
BUILD_TIMEOUT_S = 120.0
DEV_SERVER_TIMEOUT_S = 60.0
_BUILT_APP = pytest.StashKey["BuiltApp"]()
# Redis databases of the hosted-app suites (one per module and backend), emptied before each suite starts;
# other modules count theirs from 1 (tests/e2e/conftest.py) and name a few of their own below 12.
_REDIS_DATABASES = itertools.cycle((10, 11))


@dataclass(frozen=True)
class BuiltApp:
    """The test app's repository in a temp folder and its build."""

    root: Path
    name: str

    @property
    def dist(self) -> Path:
        """What `npm run build` wrote: the folder SPARK_APP_DIR names."""
        return self.root / "dist"


def node() -> str:
    """Node from PATH, as a Spark developer runs it."""
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not on PATH (Node 20 is part of the machine image)", pytrace=False)
    return found


def built_app(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> BuiltApp:
    """The test app built with vite; built on the first call of the session, the same build afterwards."""
    if _BUILT_APP not in config.stash:
        config.stash[_BUILT_APP] = build_app(tmp_path_factory.mktemp("spark-app") / "app")
    return config.stash[_BUILT_APP]


def build_app(root: Path) -> BuiltApp:
    """Copies the test app to `root`, links tools/node's modules in and runs `vite build` there."""
    if not VITE.exists():
        pytest.fail(f"vite is missing from {NODE_MODULES}: `make test-deps` installs tools/node", pytrace=False)
    shutil.copytree(APP_SOURCE, root, ignore=shutil.ignore_patterns("node_modules", "dist"))
    link_node_modules(root)
    completed = subprocess.run(
        [node(), str(VITE), "build"],
        cwd=root,
        env=node_environment(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, f"vite build failed:\n{completed.stdout}\n{completed.stderr}"
    assert (root / "dist" / "index.html").exists(), completed.stdout
    name = json.loads((root / "runtime.config.json").read_text(encoding="utf-8"))["app"]
    return BuiltApp(root, str(name))


def link_node_modules(root: Path) -> None:
    """A real `node_modules/` of links to tools/node's packages: Node resolves the app's imports through it,
    while vite's cache (`node_modules/.vite`) stays in the app's own folder rather than in tools/node."""
    modules = root / "node_modules"
    modules.mkdir()
    for entry in NODE_MODULES.iterdir():
        if not entry.name.startswith("."):
            (modules / entry.name).symlink_to(entry)


def node_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a node process of the tests: the caller's, less what would change what vite does."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPARK_", "GITHUB_", "VITE_")) and k not in {"OUTPUT_DIR", "NODE_OPTIONS"}
    }
    env.update(extra or {})
    return env


def start_suite(request: pytest.FixtureRequest, directory: Path, app: BuiltApp, env: Mapping[str, str]) -> RunningSuite:
    """The suite serving `app`, on the store `request.param` names ("sqlite" or "redis")."""
    env = {"SPARK_APP_DIR": str(app.dist), **env}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = f"{server.url.rsplit('/', 1)[0]}/{next(_REDIS_DATABASES)}"
        with redis.Redis.from_url(env["REDIS_URL"]) as client:
            client.flushdb()
    return RunningSuite.start(directory, env)


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium for as long as the block runs."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless, through Playwright; never a downloaded browser."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test-deps` installs Debian's chromium package", pytrace=False)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)


def open_app(page: Page, url: str = "/") -> None:
    """Loads the app and waits until it has read its state."""
    page.goto(url)
    app_ready(page)


def app_ready(page: Page) -> None:
    """Waits until the app on `page` has read its state (useKV's first reads, the keys, the user)."""
    expect(page.get_by_test_id("keys")).to_have_attribute("data-loaded", "true")
    expect(page.get_by_test_id("user")).to_be_visible()
    page.wait_for_load_state("networkidle")


def increment(page: Page, key: str = "counter") -> None:
    """Clicks the counter's button and waits for useKV's write (the hook sends it without awaiting it)."""
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith(f"/kv/{key}")) as written:
        page.get_by_test_id("increment").click()
    assert written.value.ok, written.value.status


class ViteDevServer:
    """`vite` (dev) serving the app's sources, its Spark plugin pointed at the suite by GITHUB_API_URL."""

    def __init__(self, app: BuiltApp, github_api_url: str, github_token: str = "") -> None:
        self.app = app
        self.port = free_port()
        self.log_path = app.root / f"vite-dev-{self.port}.log"
        # PORT: the test app's vite.config.ts hands it to the Spark plugin, whose port wins over vite's --port.
        self.env = node_environment(
            {"GITHUB_API_URL": github_api_url, "GITHUB_TOKEN": github_token, "PORT": str(self.port)}
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [node(), str(VITE), "--host", HOST, "--port", str(self.port), "--strictPort"],
                cwd=self.app.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + DEV_SERVER_TIMEOUT_S
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"vite dev did not start:\n{self.log()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + "/", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process, 10.0)

    def __enter__(self) -> ViteDevServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


class OtherSite:
    """A second local HTTP server, on another origin than the suite's: it answers `pages[path]` as HTML."""

    def __init__(self, pages: Mapping[str, str]) -> None:
        self.pages = dict(pages)
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = site.pages.get(self.path.split("?", 1)[0])
                body = (page if page is not None else "not here").encode()
                self.send_response(200 if page is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def __enter__(self) -> OtherSite:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
