"""The combined benchmark's report: the KV, chat and streams reports in one table and one JSON document.

Each part's report is what its own command writes (`benchmarks.kv`, `benchmarks.llm`,
`benchmarks.streams`); a part that did not run is None and its failure is one of the
problems. The table has a section per part plus one for memory: every suite's idle and
loaded RSS next to each peer's (LiteLLM, Portkey, webdis, redis-server).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from benchmarks.harness import Section, counts_text, cpu_text, problems_section, sectioned_table
from benchmarks.streams import TARGET as STREAMS_TARGET
from benchmarks.streams import amount

# What the chat rows' RSS maps hold besides the suite's processes and the peer.
_NOT_SUITE: Final = frozenset({"provider", "peer"})


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """RSS in MiB of one process, or of a suite's processes together, in one part of the run."""

    process: str
    run: str
    idle_mib: float | None
    loaded_mib: float | None
    after_mib: float | None = None

    @property
    def growth_mib(self) -> float | None:
        last = self.after_mib if self.after_mib is not None else self.loaded_mib
        return None if last is None or self.idle_mib is None else round(last - self.idle_mib, 1)


def _suite_sum(rss: Mapping[str, float | None]) -> float | None:
    values = [value for name, value in rss.items() if name not in _NOT_SUITE and value is not None]
    return round(sum(values), 1) if values else None


def kv_memory(kv: Mapping[str, Any]) -> list[MemoryRow]:
    """Each KV suite's total, idle and 1 s after its load, then redis-server and webdis (fresh, after all load)."""
    return [
        MemoryRow(m["process"], f"KV, {m['backend']}", m["idle_before_mib"], m["after_load_mib"])
        for m in kv["memory"]
        if m["process"] in ("suite total", "redis-server", "webdis")
    ]


def chat_memory(chat: Mapping[str, Any]) -> list[MemoryRow]:
    """Per chat target with an idle row (each suite, each peer): idle, and right after the 16-connection load."""
    rows = chat["rows"]
    found = []
    for idle in (row for row in rows if row["target"].endswith(" (idle)")):
        name = idle["target"].removesuffix(" (idle)")
        loaded = next((row for row in rows if row["target"] == name and row["conns"] > 1), None)
        is_peer = "peer" in idle["rss_mib"]
        pick = (lambda rss: rss.get("peer")) if is_peer else _suite_sum
        found.append(
            MemoryRow(
                name if is_peer else "suite total",
                "chat" if is_peer else f"chat, {name}",
                pick(idle["rss_mib"]),
                pick(loaded["rss_mib"]) if loaded is not None else None,
            )
        )
    return found


def streams_memory(streams: Mapping[str, Any]) -> list[MemoryRow]:
    """Every process of the streams' suite (and the fake provider): idle, at the peak, after the streams closed."""
    memory = streams["memory_mib"]
    run = f"{streams['config']['streams']:,} streams"
    return [
        MemoryRow(name, run, idle, memory["peak"].get(name), memory["after"].get(name))
        for name, idle in memory["idle"].items()
    ]


def memory_rows(
    kv: Mapping[str, Any] | None, chat: Mapping[str, Any] | None, streams: Mapping[str, Any] | None
) -> list[MemoryRow]:
    return [
        *(kv_memory(kv) if kv else []),
        *(chat_memory(chat) if chat else []),
        *(streams_memory(streams) if streams else []),
    ]


def merge(
    *,
    kv: Mapping[str, Any] | None,
    chat: Mapping[str, Any] | None,
    streams: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    failures: Sequence[str] = (),
) -> dict[str, Any]:
    """One document: the parts as they are, the memory summary, every target's verdict and every problem."""
    parts = {"kv": kv, "chat": chat, "streams": streams}
    targets = []
    if kv:
        targets.append({"target": kv["target"]["text"], "verdicts": kv["verdicts"]})
    if chat:
        targets.append({"target": chat["target"], "verdicts": chat["verdicts"]})
    if streams:
        targets.append({"target": STREAMS_TARGET, "verdicts": streams["verdicts"]})
    problems = [*failures]
    for name, part in parts.items():
        problems += [f"{name}: {problem}" for problem in (part or {}).get("problems", [])]
    memory = memory_rows(kv, chat, streams)
    return {
        "config": dict(config),
        **parts,
        "memory": [{**asdict(row), "growth_mib": row.growth_mib} for row in memory],
        "targets": targets,
        "problems": problems,
    }


# --- rendering --------------------------------------------------------------------------------------


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _kv_section(kv: Mapping[str, Any]) -> Section:
    config = kv["config"]
    return Section(
        f"KV: {config['keys']:,} keys of {config['value_bytes']}-byte JSON, {config['connections']} connections",
        ("target", "store, op", "req/s", "p50 ms", "p99 ms", "errors", "cpu % of one core"),
        [
            (row["target"], f"{row['backend']}, {row['op']}", f"{row['rps']:,.0f}", f"{row['p50_ms']:.2f}",
             f"{row['p99_ms']:.2f}", counts_text(row["errors"]), cpu_text(row["cpu_percent"]))
            for row in kv["rows"]
        ],
    )  # fmt: skip


def _chat_sections(chat: Mapping[str, Any]) -> list[Section]:
    load = Section(
        "Chat completions, not streamed, against an instant fake provider",
        ("target", "connections", "req/s", "p50 ms", "p99 ms", "errors", "cpu % of one core"),
        [
            (row["target"], str(row["conns"]), f"{row['rps']:,.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
             counts_text(row["errors"]), cpu_text(row["cpu_percent"]))
            for row in chat["rows"]
            if row["conns"]
        ],
    )  # fmt: skip
    base = next((t for t in chat["ttft"] if t["target"] == "provider directly"), None)

    def added(ttft: Mapping[str, Any]) -> str:
        return "-" if base is None or ttft is base else f"{ttft['p50_ms'] - base['p50_ms']:.2f}"

    ttft = Section(
        "Streaming: time to first token, one request at a time",
        ("target", "requests", "added p50 ms", "TTFT p50 ms", "TTFT p99 ms"),
        [(t["target"], str(t["requests"]), added(t), f"{t['p50_ms']:.2f}", f"{t['p99_ms']:.2f}") for t in chat["ttft"]],
    )
    return [load, ttft]


def _streams_section(streams: Mapping[str, Any]) -> Section:
    config, result = streams["config"], streams["result"]
    return Section(
        f"Streaming: {config['streams']:,} streams opened at once through the edge, {config['tokens']} tokens over "
        f"~{config['hold_s']:g} s each",
        ("target", "streams", "completed", "TTFT p50 ms", "TTFT p99 ms", "failures", "held"),
        [
            (f"edge, llm x{config['llm_workers']}", f"{result['streams']:,}", f"{result['completed']:,}",
             f"{result['ttft_p50_ms']:.1f}", f"{result['ttft_p99_ms']:.1f}", counts_text(result["failures"]),
             f"{result['max_connected']:,} connected and {result['max_streaming']:,} streaming at once, "
             f"{result['listen_overflows']} listen overflows")
        ],
    )  # fmt: skip


def _memory_section(memory: Sequence[Mapping[str, Any]]) -> Section:
    return Section(
        "Memory: RSS in MiB, idle and loaded (KV, chat: after the load; streams: at the peak, then after they closed)",
        ("process", "run", "idle", "loaded", "after", "growth"),
        [
            (m["process"], m["run"], _mib(m["idle_mib"]), _mib(m["loaded_mib"]), _mib(m["after_mib"]),
             _mib(m["growth_mib"]))
            for m in memory
        ],
    )  # fmt: skip


def limit_lines(streams: Mapping[str, Any]) -> list[str]:
    """The suite's limits on the streams' path below what the run needs (and the shipped defaults'), with where."""

    def lines(limits: Sequence[Mapping[str, Any]]) -> list[str]:
        return [
            f"  {limit['name']} = {amount(limit['value'])} at {limit['where']}, needs {amount(limit['needed'])}"
            for limit in limits
        ]

    low = [limit for limit in streams["limits"] if not limit["ok"]]
    found = ["Suite limits on the streams' path below what the run needs:", *lines(low)] if low else [
        "Every suite limit on the streams' path allows them (the list is in the JSON)."]  # fmt: skip
    defaults = [limit for limit in streams["default_limits"] if not limit["ok"]]
    if defaults:
        found += ["Shipped defaults (not in use here: the run uses benchmarks/limits.toml) that would refuse them:"]
        found += lines(defaults)
    return found


def render(report: Mapping[str, Any]) -> str:
    config = report["config"]
    sections = []
    if report["kv"]:
        sections.append(_kv_section(report["kv"]))
    if report["chat"]:
        sections += _chat_sections(report["chat"])
    if report["streams"]:
        sections.append(_streams_section(report["streams"]))
    if report["memory"]:
        sections.append(_memory_section(report["memory"]))
    parts = [
        f"Spark benchmark: wrk {config['duration_s']:g} s per row; {config['streams']:,} streams of "
        f"~{config['hold_s']:g} s; peers {'on' if config['peers'] else 'off'}; host: {config['cpus']} CPUs, load "
        f"average at start {config['load_average_at_start']}; took {config['elapsed_s']:.0f} s",
    ]
    if sections:
        parts += ["", sectioned_table(sections)]
    if report["streams"]:
        parts += ["", *limit_lines(report["streams"])]
    parts += ["", "Targets, for information (the exit code does not depend on them):"]
    for target in report["targets"]:
        parts += [f"  {target['target']}", *(f"    {line}" for line in target["verdicts"])]
    parts += problems_section(report["problems"])
    return "\n".join(parts) + "\n"
