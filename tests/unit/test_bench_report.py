"""The combined benchmark's pure pieces: webdis's config and paths, SSE stream counting, the suite's limits on the
streams' path, the sectioned table, and the merged report."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness import Section, p50_p99, parse_wrk_report, raise_open_files_limit, sectioned_table, table
from benchmarks.report import limit_lines, memory_rows, merge, render
from benchmarks.streams import (
    Limit,
    SseTally,
    StreamResult,
    amount,
    counter_causes,
    edge_counters,
    max_open,
    openai_content,
    reply_text,
    risen,
    source_line,
    stream_limits,
    summarize,
    with_total,
)
from benchmarks.webdis import command_path, render_webdis_config, version_from_log

# --- webdis -----------------------------------------------------------------------------------------


def test_the_webdis_config_serves_loopback_in_the_foreground_in_front_of_the_given_redis() -> None:
    config = json.loads(render_webdis_config(6399, 7399, threads=2))

    assert config["redis_host"] == "127.0.0.1"
    assert config["redis_port"] == 6399
    assert config["http_host"] == "127.0.0.1"
    assert config["http_port"] == 7399
    assert config["threads"] == 2
    assert config["daemonize"] is False
    assert config["database"] == 0
    # Start-up lines only: a line per request would be part of what is measured.
    assert config["verbosity"] <= 3
    assert config["logfile"] == "/dev/stdout"
    assert "acl" not in config


def test_webdis_command_paths_keep_slashes_and_dots_inside_an_argument() -> None:
    assert command_path("GET", "bench-000001") == "/GET/bench-000001"
    assert command_path("SET", "a.b", '{"x":"y/z"}') == "/SET/a%2Eb/%7B%22x%22%3A%22y%2Fz%22%7D"


def test_the_webdis_version_comes_from_its_start_up_line() -> None:
    log = "[1] 23 Nov 02:39:53 35 Webdis listening on port 7379\n[1] 23 Nov 02:39:53 35 Webdis 0.1.9 up and running\n"

    assert version_from_log(log) == "0.1.9"
    assert version_from_log("") is None


def test_a_webdis_answer_that_is_not_the_value_counts_as_an_error() -> None:
    output = (
        'WRK_JSON {"requests":100,"duration_us":1000000,"bytes":1,'
        '"errors":{"connect":0,"read":0,"write":0,"status":0,"timeout":0},"non2xx":0,"statuses":{},"mismatched":7,'
        '"latency_us":{"mean":1.0,"p50":100,"p90":200,"p99":300,"p999":400,"max":500}}\n'
    )

    result = parse_wrk_report(output)

    assert result.errors == {"wrong body": 7}
    assert result.error_count == 7


# --- SSE streams ------------------------------------------------------------------------------------


def _chunk(content: str | None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_a_stream_collects_its_content_and_ends_at_done() -> None:
    tally = SseTally(openai_content)
    lines = [
        _chunk(""),
        "",
        _chunk("tok00 "),
        "",
        ": keepalive",
        "",
        _chunk("tok01 "),
        _chunk(None, "stop"),
        "data: [DONE]",
        "",
    ]

    firsts = [tally.feed(line) for line in lines]

    # Only the first non-empty content is the first token; the role chunk's "" is not.
    assert firsts == [False, False, True, False, False, False, False, False, False, False]
    assert tally.text == "tok00 tok01 "
    assert tally.done
    assert tally.events == 4
    assert tally.error is None
    assert tally.malformed == 0


def test_a_stream_keeps_its_error_event_and_counts_malformed_events() -> None:
    tally = SseTally(openai_content)

    tally.feed("data: {not json")
    tally.feed('data: {"error": {"message": "late", "type": "timeout", "code": "deadline_exceeded"}}')

    assert tally.malformed == 1
    assert tally.error == "deadline_exceeded"
    assert not tally.done


def test_nothing_after_done_is_counted() -> None:
    tally = SseTally(openai_content)
    tally.feed("data: [DONE]")

    assert tally.feed(_chunk("late")) is False
    assert tally.text == ""


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        (StreamResult(200, 0.1, 0.2, 60.0, True, "a b ", None), "completed"),
        (StreamResult(200, 0.1, 0.2, 60.0, True, "a ", None), "tokens missing or out of order"),
        (StreamResult(200, 0.1, 0.2, 60.0, False, "a b ", None), "ended without [DONE]"),
        (StreamResult(200, 0.1, 0.2, 60.0, True, "a b ", None, malformed=1), "events that are not JSON"),
        (StreamResult(429, 0.1, None, 0.1, False, "", None), "HTTP 429"),
        (StreamResult(None, None, None, 180.0, False, "", "not over in 180 s"), "not over in 180 s"),
    ],
)
def test_a_stream_completes_only_with_every_token_and_done(result: StreamResult, outcome: str) -> None:
    assert result.outcome("a b ") == outcome


def test_max_open_is_the_largest_overlap() -> None:
    assert max_open([]) == 0
    assert max_open([(0, 10), (1, 11), (2, 12)]) == 3
    # One closing as the next opens is not an overlap.
    assert max_open([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_open([(0, 5), (6, 9), (7, 8)]) == 2


def test_a_summary_counts_completions_and_the_streams_that_were_streaming_at_once() -> None:
    expected = reply_text(2)
    results = [
        StreamResult(200, 0.1, 0.5, 60.5, True, expected, None),
        StreamResult(200, 0.1, 0.6, 60.6, True, expected, None),
        # Connected at once, but its tokens only came once the others were over.
        StreamResult(200, 0.1, 61.0, 121.0, True, expected, None),
        StreamResult(200, 0.1, None, 120.1, False, "", "error event: deadline_exceeded"),
    ]

    summary = summarize(results, expected)

    assert summary["streams"] == 4
    assert summary["completed"] == 3
    assert summary["max_connected"] == 4
    assert summary["max_streaming"] == 2
    assert summary["failures"] == {"error event: deadline_exceeded": 1}
    assert summary["ttft_p50_ms"] == pytest.approx(600.0)
    assert summary["duration_max_s"] == pytest.approx(121.0)


def test_the_reply_is_one_six_character_token_per_delta() -> None:
    assert reply_text(3) == "tok00 tok01 tok02 "


def test_the_suite_total_adds_only_the_suite_s_processes() -> None:
    rss = {"edge": 80.0, "llm": 130.5, "provider": 26.0, "gone": None}

    assert with_total(rss, ["edge", "llm", "gone"])["suite total"] == 210.5


# --- the suite's limits -----------------------------------------------------------------------------


def _envoy(max_requests: int = 4096, streams_per_connection: int = 1000) -> dict[str, Any]:
    def cluster(name: str) -> dict[str, Any]:
        options = {
            "explicit_http_config": {"http2_protocol_options": {"max_concurrent_streams": streams_per_connection}}
        }
        return {
            "name": name,
            "circuit_breakers": {"thresholds": [{"max_connections": 1024, "max_requests": max_requests}]},
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options},
        }

    manager = {"stream_idle_timeout": "300s"}
    return {
        "overload_manager": {
            "resource_monitors": [{"typed_config": {"max_active_downstream_connections": 10_000}}],
        },
        "static_resources": {
            "listeners": [{"filter_chains": [{"filters": [{"typed_config": manager}]}]}],
            "clusters": [cluster("access"), cluster("llm")],
        },
    }


def _limits_file(tmp_path: Path, per_user: int) -> Path:
    classes = ("public", "spark", "kv", "prompts", "llm", "vision", "admin")
    path = tmp_path / "limits.toml"
    path.write_text("".join(f"[classes.{name}]\nper_user = {per_user}\nper_address = 5\n\n" for name in classes))
    return path


def test_every_limit_is_checked_against_what_the_run_needs(tmp_path: Path) -> None:
    limits = stream_limits(
        1000,
        3.0,
        envoy=_envoy(max_requests=1024),
        limits_file=_limits_file(tmp_path, 120),
        llm_workers=1,
        provider_connections=256,
        llm_timeout_s=120.0,
        open_files=20_000,
    )
    by_name = {limit.name: limit for limit in limits}

    low = sorted(limit.name for limit in limits if not limit.ok)
    assert low == [
        "llm's access check: llm requests per user per minute (limits file in use)",
        "llm: provider connections (256 per llm process x 1)",
    ]
    assert by_name["edge: llm cluster circuit breaker max_requests"].value == 1024
    assert by_name["edge: llm cluster circuit breaker max_requests"].ok
    assert by_name["edge: stream idle timeout, s (vs the gap between tokens)"].value == 300
    access = by_name["llm's access check: llm requests per user per minute (limits file in use)"]
    # The limits file's own line for the llm class's per_user (the fifth class, four lines each).
    assert access.where == f"{tmp_path}/limits.toml:18"


def test_more_llm_processes_open_more_provider_connections(tmp_path: Path) -> None:
    limits = stream_limits(
        1000, 3.0, envoy=_envoy(), limits_file=_limits_file(tmp_path, 10**9), llm_workers=4,
        provider_connections=256, llm_timeout_s=120.0, open_files=20_000,
    )  # fmt: skip

    assert all(limit.ok for limit in limits), [limit for limit in limits if not limit.ok]


def test_source_line_names_the_repository_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[classes.kv]\nper_user = 1\n[classes.llm]\nper_user = 2\n")

    assert source_line(path, r"^per_user") == f"{path}:2"
    assert source_line(path, r"^per_user", after=r"^\[classes\.llm\]") == f"{path}:4"
    assert source_line(path, r"nothing") == str(path)
    assert source_line(Path(__file__), r"^def test_source_line").startswith("tests/unit/test_bench_report.py:")


def test_amounts_read_as_numbers() -> None:
    assert amount(1_024_000.0) == "1,024,000"
    assert amount(3.157894) == "3.16"
    assert amount(float("inf")) == "none"


def test_raising_the_open_files_limit_never_lowers_it() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)

    assert raise_open_files_limit(16) == soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft


# --- tables and the merged report -------------------------------------------------------------------


def test_a_single_table_is_unchanged() -> None:
    assert table(("a", "bb"), [("ccc", "d")]) == "a    bb\n---  --\nccc  d"


def test_sections_share_their_column_widths() -> None:
    text = sectioned_table(
        [Section("First", ("name", "n"), [("long name", "1")]), Section("Second", ("x", "y", "z"), [("a", "22", "3")])]
    )

    assert text.splitlines() == [
        "First",
        "name       n",
        "---------  --",
        "long name  1",
        "",
        "Second",
        "x          y   z",
        "---------  --  -",
        "a          22  3",
    ]


def test_a_row_that_does_not_match_its_header_is_refused() -> None:
    with pytest.raises(ValueError, match="KV"):
        sectioned_table([Section("KV", ("a", "b"), [("only one",)])])


def test_p50_p99_of_few_samples() -> None:
    assert p50_p99([]) == (0.0, 0.0)
    assert p50_p99([5.0]) == (5.0, 5.0)
    p50, p99 = p50_p99([float(i) for i in range(1, 101)])
    assert p50 == pytest.approx(50.5)
    assert 99.0 <= p99 <= 100.0


def _kv() -> dict[str, Any]:
    row = {"conns": 16, "p50_ms": 1.0, "p99_ms": 4.0, "errors": {}, "cpu_percent": {"edge": 90.0, "host": 199.0}}
    return {
        "target": {"text": "KV GET through the edge ≥ 8,000 req/s with p99 ≤ 10 ms"},
        "config": {"keys": 1000, "value_bytes": 100, "connections": 16},
        "rows": [
            {**row, "target": "edge, kv x2", "backend": "sqlite", "op": "GET", "rps": 9000.0},
            {
                **row,
                "target": "webdis 0.1.9",
                "backend": "redis",
                "op": "GET",
                "rps": 30000.0,
                "errors": {"wrong body": 2},
            },
        ],
        "verdicts": ["PASS  edge, kv x2, sqlite: 9,000 req/s, p99 4.00 ms"],
        "memory": [
            {"process": "edge", "backend": "sqlite, kv x2", "idle_before_mib": 80.0, "after_load_mib": 90.0},
            {"process": "suite total", "backend": "sqlite, kv x2", "idle_before_mib": 400.0, "after_load_mib": 420.0},
            {"process": "redis-server", "backend": "redis", "idle_before_mib": 10.0, "after_load_mib": 12.0},
            {"process": "webdis", "backend": "redis", "idle_before_mib": 2.2, "after_load_mib": 2.4},
        ],
        "problems": ["webdis GET: {'wrong body': 2}"],
    }


def _chat() -> dict[str, Any]:
    row = {"p50_ms": 5.0, "p99_ms": 9.0, "errors": {}, "cpu_percent": {}}
    return {
        "target": "non-streaming completions through the edge ≥ 2x Portkey's req/s and ≥ 15x LiteLLM's",
        "rows": [
            {**row, "target": "edge, llm x1", "conns": 16, "rps": 3000.0,
             "rss_mib": {"edge": 90.0, "llm": 140.0, "provider": 26.0}},
            {**row, "target": "edge, llm x1", "conns": 1, "rps": 900.0,
             "rss_mib": {"edge": 91.0, "llm": 141.0, "provider": 26.0}},
            {**row, "target": "edge, llm x1 (idle)", "conns": 0, "rps": 0.0,
             "rss_mib": {"edge": 80.0, "llm": 130.0, "provider": 25.0}},
            {**row, "target": "LiteLLM proxy 1.2.3", "conns": 16, "rps": 150.0, "rss_mib": {"peer": 700.0}},
            {**row, "target": "LiteLLM proxy 1.2.3 (idle)", "conns": 0, "rps": 0.0, "rss_mib": {"peer": 650.0}},
        ],
        "ttft": [
            {"target": "provider directly", "requests": 200, "p50_ms": 1.0, "p99_ms": 2.0},
            {"target": "edge, llm x1", "requests": 200, "p50_ms": 3.5, "p99_ms": 6.0},
        ],
        "verdicts": ["FAIL  edge / LiteLLM = 20.0x ≥ 15x"],
        "problems": [],
    }  # fmt: skip


def _streams() -> dict[str, Any]:
    idle = {"edge": 80.0, "llm": 130.0, "provider": 26.0, "suite total": 210.0}
    return {
        "config": {"streams": 1000, "hold_s": 60.0, "tokens": 20, "llm_workers": 1},
        "result": {
            "streams": 1000, "completed": 512, "max_connected": 1000, "max_streaming": 256, "ttft_p50_ms": 900.0,
            "ttft_p99_ms": 120000.0, "listen_overflows": 0, "failures": {"error event: deadline_exceeded": 488},
        },
        "memory_mib": {"idle": idle, "peak": {**idle, "edge": 150.0, "suite total": 280.0},
                       "after": {**idle, "edge": 140.0, "suite total": 270.0}},
        "limits": [
            {"name": "llm: provider connections", "where": "services/llm/providers/transport.py:25", "value": 256,
             "needed": 1000, "ok": False},
            {"name": "edge: llm max_requests", "where": "edge/envoy.py:649", "value": 4096, "needed": 1000, "ok": True},
        ],
        "default_limits": [{"name": "access (shipped default): llm per user per minute",
                            "where": "services/access/limits.toml:43", "value": 120, "needed": 1000, "ok": False}],
        "verdicts": ["FAIL  512 of 1,000 streams completed with every token, 256 streaming at once for ~60 s"],
        "problems": ["488 of 1000 streams did not complete"],
    }  # fmt: skip


def _config() -> dict[str, Any]:
    return {"duration_s": 10.0, "streams": 1000, "hold_s": 60.0, "peers": True, "cpus": 2,
            "load_average_at_start": "0.1 0.2 0.3", "elapsed_s": 512.0}  # fmt: skip


def test_memory_puts_every_suite_next_to_every_peer() -> None:
    rows = {(row.process, row.run): row for row in memory_rows(_kv(), _chat(), _streams())}

    assert set(rows) == {
        ("suite total", "KV, sqlite, kv x2"),
        ("redis-server", "KV, redis"),
        ("webdis", "KV, redis"),
        ("suite total", "chat, edge, llm x1"),
        ("LiteLLM proxy 1.2.3", "chat"),
        ("edge", "1,000 streams"),
        ("llm", "1,000 streams"),
        ("provider", "1,000 streams"),
        ("suite total", "1,000 streams"),
    }
    # The chat suite's total leaves the fake provider out, and is sampled after the 16-connection load.
    chat_suite = rows[("suite total", "chat, edge, llm x1")]
    assert (chat_suite.idle_mib, chat_suite.loaded_mib, chat_suite.growth_mib) == (210.0, 230.0, 20.0)
    litellm = rows[("LiteLLM proxy 1.2.3", "chat")]
    assert (litellm.idle_mib, litellm.loaded_mib) == (650.0, 700.0)
    # Streams: growth is what stayed after the streams closed, not the peak.
    edge = rows[("edge", "1,000 streams")]
    assert (edge.loaded_mib, edge.after_mib, edge.growth_mib) == (150.0, 140.0, 60.0)


def test_the_merged_report_keeps_every_part_and_prefixes_their_problems() -> None:
    report = merge(kv=_kv(), chat=_chat(), streams=_streams(), config=_config(), failures=["x: failed"])

    assert report["kv"] == _kv()
    assert report["chat"] == _chat()
    assert report["streams"] == _streams()
    assert report["problems"] == [
        "x: failed",
        "kv: webdis GET: {'wrong body': 2}",
        "streams: 488 of 1000 streams did not complete",
    ]
    assert [target["verdicts"] for target in report["targets"]] == [
        _kv()["verdicts"],
        _chat()["verdicts"],
        _streams()["verdicts"],
    ]
    json.dumps(report)


def test_a_part_that_did_not_run_is_left_out() -> None:
    report = merge(kv=None, chat=_chat(), streams=None, config=_config(), failures=["kv: not measured, it failed"])

    assert report["kv"] is None
    assert [target["target"] for target in report["targets"]] == [_chat()["target"]]
    text = render(report)
    assert "KV:" not in text
    assert "kv: not measured, it failed" in text


def test_the_rendered_report_has_a_section_per_part_the_limits_and_the_verdicts() -> None:
    text = render(merge(kv=_kv(), chat=_chat(), streams=_streams(), config=_config()))

    for title in (
        "KV: 1,000 keys of 100-byte JSON, 16 connections",
        "Chat completions, not streamed",
        "Streaming: time to first token, one request at a time",
        "Streaming: 1,000 streams opened at once through the edge",
        "Memory: RSS in MiB",
    ):
        assert title in text
    assert "wrong body: 2" in text
    # The idle chat rows are memory, not load.
    assert "(idle)" not in text
    assert "llm: provider connections = 256 at services/llm/providers/transport.py:25, needs 1,000" in text
    assert "access (shipped default): llm per user per minute = 120 at services/access/limits.toml:43" in text
    assert "    PASS  edge, kv x2, sqlite: 9,000 req/s, p99 4.00 ms" in text
    assert "took 512 s" in text


def test_limit_lines_say_so_when_every_limit_allows_the_run() -> None:
    streams = {**_streams(), "limits": [{**_streams()["limits"][1]}], "default_limits": []}

    assert limit_lines(streams) == ["Every suite limit on the streams' path allows them (the list is in the JSON)."]


def test_a_limit_is_ok_when_its_value_covers_the_need() -> None:
    assert Limit("a", "here", 1000, 1000).ok
    assert not Limit("a", "here", 999, 1000).ok


STATS = """cluster.access.upstream_rq_timeout: 63
cluster.access.upstream_rq_total: 1001
cluster.llm.ext_authz.error: 63
cluster.llm.upstream_rq_pending_overflow: 0
http.edge.downstream_rq_idle_timeout: 0
http.edge.ext_authz.error: 63
http.edge.ext_authz.ok: 937
listener.127.0.0.1_8080.downstream_global_cx_overflow: 0
server.version: 1234
"""


def test_the_edge_counters_are_the_refusals_and_timeouts_counted_once() -> None:
    counters = edge_counters(STATS)

    # The per-cluster copy of the ext_authz counters is left out; totals and oks are not refusals.
    assert counters == {
        "cluster.access.upstream_rq_timeout": 63,
        "cluster.llm.upstream_rq_pending_overflow": 0,
        "http.edge.downstream_rq_idle_timeout": 0,
        "listener.127.0.0.1_8080.downstream_global_cx_overflow": 0,
    }


def test_only_the_counters_that_rose_are_kept() -> None:
    assert risen({"a": 1, "b": 5}, {"a": 1, "b": 7, "c": 2}) == {"b": 2, "c": 2}


def test_a_connection_limit_names_its_setting() -> None:
    causes = counter_causes({"http.edge.downstream_global_cx_overflow": 3, "cluster.llm.upstream_rq_timeout": 63})

    assert causes[0].startswith("edge counter http.edge.downstream_global_cx_overflow +3: the edge's connection limit")
    assert "(edge/settings.py:" in causes[0]
    assert causes[1] == "edge counter cluster.llm.upstream_rq_timeout +63"
