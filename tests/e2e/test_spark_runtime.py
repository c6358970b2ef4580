"""The published `@github/spark` runtime, unmodified, against the edge.

The runtime's KV client is what `spark.kv`, `useKV` and the `/_spark/db`
collections all use. `make test` fetches the pinned package with `npm pack`
into `tools/node/node_modules/` (tools/node/package-lock.json); Node stands in for the browser.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.suite import ROOT, RunningSuite

pytestmark = pytest.mark.e2e

RUNTIME_DIST = ROOT / "tools" / "node" / "node_modules" / "@github" / "spark" / "dist"
SCENARIO_DIR = Path(__file__).parent / "spark_runtime"


def run_scenario(base_url: str, script: str = "scenario.mjs") -> dict[str, object]:
    node = shutil.which("node")
    assert node is not None, "node is required (Node 20 is part of the machine image)"
    assert (RUNTIME_DIST / "db.js").exists(), "the @github/spark runtime is missing: run `make test-deps`"
    completed = subprocess.run(
        [node, "--import", "./register.mjs", script, str(RUNTIME_DIST), base_url],
        cwd=SCENARIO_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Error" not in completed.stderr, completed.stderr
    return dict(json.loads(completed.stdout))


def test_published_runtime_works_unmodified(suite: RunningSuite, http: httpx.Client) -> None:
    seen = run_scenario(suite.base_url)
    assert seen["greeting"] == {"hello": "world", "n": [1, 2, 3]}
    assert seen["missing"] == "<undefined>"
    assert seen["initialFirst"] == 1
    assert seen["initialSecond"] == 1
    assert seen["counter"] == 3
    assert seen["odd"] == "odd value"
    assert seen["aString"] == "just text"
    assert {"greeting", "counter", "a/b c?%#é 😀", "a string"} <= set(seen["keys"])  # type: ignore[arg-type]
    assert seen["afterDelete"] == "<undefined>"
    assert "greeting" not in seen["keysAfterDelete"]  # type: ignore[operator]
    first_id, second_id = seen["ids"]  # type: ignore[misc]
    assert seen["all"] == [
        {"_id": first_id, "title": "first", "done": False},
        {"_id": second_id, "title": "second", "done": True},
    ]
    assert seen["got"] == {"_id": first_id, "title": "first", "done": False}
    assert seen["updated"] == {"_id": first_id, "title": "first", "done": True}
    assert seen["doneQuery"] == ["first", "second"]
    assert seen["deleted"] is True
    assert seen["allAfterDelete"] == [{"_id": first_id, "title": "first", "done": True}]
    assert seen["rawCollectionKeyInDefault"] is False
    # What the runtime wrote is what the HTTP contract stores: JSON.stringify's text.
    assert http.get("/_spark/kv/counter").content == b"3"
    assert http.get(f"/_spark/kv/{first_id}?collection=todos").content == b'{"title":"first","done":true}'


def test_the_runtime_reports_its_load_and_spark_user_is_the_caller(suite: RunningSuite) -> None:
    seen = run_scenario(suite.base_url, "user_scenario.mjs")
    # Development mode: everyone is the owner.
    assert seen["user"] == {"id": "owner", "login": "owner", "email": "", "avatarUrl": "", "isOwner": True}
    assert {"url": "/_spark/loaded", "status": 200} in seen["requests"]  # type: ignore[operator]
    logs = Path(suite.env["SPARK_LOG_DIR"])
    events = [
        json.loads(line)
        for path in logs.glob("access*.log")
        for line in path.read_text().splitlines()
        if '"client_loaded"' in line and "345.6" in line
    ]
    assert [(e["url"], e["load_ms"], e["user"]) for e in events] == [
        (f"{suite.base_url}/app/index.html", 345.6, "owner")
    ]
