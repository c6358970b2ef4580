"""The peer-gateway benchmark's pure pieces: configs, command lines, environments and wrk's report."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from benchmarks.chat_load import CHAT_BODY, REQUEST_TIMEOUT_S, chat_body
from benchmarks.harness import WRK_SCRIPTS, BenchError, Wrk, parse_wrk_report
from benchmarks.peers import (
    PeerUnavailable,
    litellm_argv,
    litellm_env,
    litellm_version,
    portkey_command,
    portkey_env,
    portkey_headers,
    portkey_start_script,
    render_litellm_config,
)

FAKE = "http://127.0.0.1:40001/v1"
WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:40002/v1/chat/completions
  2 threads and 16 connections
WRK_JSON {"requests":1200,"duration_us":10000000,"bytes":960000,\
"errors":{"connect":0,"read":2,"write":0,"status":5,"timeout":1},"non2xx":7,"statuses":{"429":2,"502":5},\
"latency_us":{"mean":130000.5,"p50":120500,"p90":180000,"p99":250250,"p999":400000,"max":500000}}
"""


def test_the_chat_body_is_the_benchmark_request() -> None:
    assert json.loads(CHAT_BODY) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello"}],
        "temperature": 0.7,
    }
    assert chat_body("other-model").startswith(b'{"model":"other-model",')


def test_the_litellm_config_sends_the_model_to_the_fake_with_a_dummy_key() -> None:
    # JSON is YAML, so this is the config.yaml the proxy reads.
    config = json.loads(render_litellm_config(FAKE, "sk-secret"))

    assert config["model_list"] == [
        {
            "model_name": "gpt-4o-mini",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": FAKE, "api_key": "dummy"},
        }
    ]
    assert config["general_settings"] == {"master_key": "sk-secret"}
    assert config["litellm_settings"]["telemetry"] is False


def test_litellm_runs_one_worker_on_loopback() -> None:
    argv = litellm_argv(Path("/peers/litellm/bin/litellm"), Path("/tmp/x/config.yaml"), 40003)

    assert argv[0] == "/peers/litellm/bin/litellm"
    assert argv[argv.index("--config") + 1] == "/tmp/x/config.yaml"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "40003"
    assert argv[argv.index("--num_workers") + 1] == "1"


def test_peer_environments_drop_keys_proxies_and_settings_from_the_caller() -> None:
    caller = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "OPENAI_API_KEY": "sk-real",
        "OPENAI_BASE_URL": "https://api.openai.com/v1",
        "LITELLM_MASTER_KEY": "sk-other",
        "DATABASE_URL": "postgres://x",
        "HTTPS_PROXY": "http://proxy:3128",
        "http_proxy": "http://proxy:3128",
        "REDIS_URL": "redis://x",
        "PORTKEY_API_KEY": "pk",
        "NODE_OPTIONS": "--inspect",
    }

    litellm = litellm_env(caller)
    portkey = portkey_env(caller)

    for env in (litellm, portkey):
        assert env["PATH"] == "/usr/bin"
        assert env["HOME"] == "/root"
        assert "127.0.0.1" in env["NO_PROXY"]
        leaked = set(caller) - {"PATH", "HOME"}
        assert not leaked & set(env), leaked & set(env)
    assert litellm["LITELLM_LOG"] == "ERROR"
    assert litellm["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert portkey["NODE_ENV"] == "production"


def test_portkey_routes_to_the_fake_by_headers() -> None:
    assert portkey_headers(FAKE) == {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": FAKE,
        "Authorization": "Bearer dummy",
    }


@pytest.mark.parametrize(
    ("package_json", "script"),
    [
        ({"bin": "build/start-server.js"}, "build/start-server.js"),
        ({"bin": {"gateway": "build/start-server.js"}}, "build/start-server.js"),
    ],
)
def test_the_portkey_start_script_comes_from_bin(package_json: dict[str, object], script: str) -> None:
    assert portkey_start_script(package_json) == script


@pytest.mark.parametrize("package_json", [{}, {"bin": {}}, {"bin": {"a": "a.js", "b": "b.js"}}])
def test_a_package_without_one_start_script_is_unavailable(package_json: dict[str, object]) -> None:
    with pytest.raises(PeerUnavailable, match="bin"):
        portkey_start_script(package_json)


def test_the_portkey_command_runs_the_installed_script_headless_on_loopback(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "start-server.js").write_text("")
    (tmp_path / "package.json").write_text(json.dumps({"version": "1.15.2", "bin": "build/start-server.js"}))

    command = portkey_command("/usr/bin/node", tmp_path)
    argv = command.for_port(40004)

    assert command.version == "1.15.2"
    assert argv[0] == "/usr/bin/node"
    assert argv[2:] == [str(tmp_path / "build" / "start-server.js"), "--headless", "--port=40004"]
    shim = unquote(argv[1].removeprefix("--import=data:text/javascript,"))
    assert "net.Server.prototype.listen" in shim
    assert '"127.0.0.1"' in shim


def test_a_missing_portkey_script_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"bin": "build/start-server.js"}))

    with pytest.raises(PeerUnavailable, match="missing"):
        portkey_command("/usr/bin/node", tmp_path)


def test_the_litellm_version_comes_from_its_dist_info(tmp_path: Path) -> None:
    assert litellm_version(tmp_path) is None
    (tmp_path / "lib" / "python3.11" / "site-packages" / "litellm-1.2.3.dist-info").mkdir(parents=True)

    assert litellm_version(tmp_path) == "1.2.3"


def test_unavailable_is_a_bench_error() -> None:
    assert issubclass(PeerUnavailable, BenchError)


def test_wrk_sends_the_body_and_headers_with_the_chat_script() -> None:
    argv = Wrk(
        "http://127.0.0.1:40002/v1/chat/completions",
        ["json", CHAT_BODY.decode()],
        headers={"Authorization": "Bearer k", "x-portkey-provider": "openai"},
        connections=16,
        duration_s=10,
        timeout_s=REQUEST_TIMEOUT_S,
    ).argv()

    assert argv[:5] == ["wrk", "-t2", "-c16", "-d10s", "--latency"]
    assert argv[argv.index("--timeout") + 1] == "10s"
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "-H"] == [
        "Authorization: Bearer k",
        "x-portkey-provider: openai",
    ]
    assert argv[argv.index("-s") + 1] == str(WRK_SCRIPTS / "load.lua")
    assert argv[-4:] == ["http://127.0.0.1:40002/v1/chat/completions", "--", "json", CHAT_BODY.decode()]
    assert (WRK_SCRIPTS / "load.lua").is_file()


def test_wrk_never_runs_more_threads_than_connections() -> None:
    argv = Wrk("http://h/", ["{}"], connections=1, duration_s=0.5).argv()

    assert argv[1:4] == ["-t1", "-c1", "-d0.5s"]


def test_the_wrk_report_counts_socket_errors_and_every_non_2xx() -> None:
    result = parse_wrk_report(WRK_OUTPUT)

    assert result.requests == 1200
    assert result.rps == pytest.approx(120.0)
    assert result.p50_ms == pytest.approx(120.5)
    assert result.p99_ms == pytest.approx(250.25)
    # wrk's own "status" counter (>= 400 only) is replaced by the per-status counts.
    assert result.errors == {"read": 2, "timeout": 1, "http 429": 2, "http 502": 5}
    assert result.error_count == 10


def test_output_without_a_report_is_an_error() -> None:
    with pytest.raises(BenchError, match="WRK_JSON"):
        parse_wrk_report("unable to connect to 127.0.0.1:1 Connection refused\n")
