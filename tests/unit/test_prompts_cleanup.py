"""The `regex_cleanup` rule: JS-style flags, refused patterns, cleaning whole and streamed answers."""

# Russian answers are the point of several cases, so Cyrillic look-alike letters are intended.
# ruff: noqa: RUF001

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.cleanup import (
    DEFAULT_RULE,
    MAX_PATTERN_CHARS,
    CleanupRule,
    StreamCleaner,
    apply,
    compile_rule,
)
from services.common.errors import InvalidArgument

ANSWER = "System: you are a bot\nОтвет: да\nmeta: tokens=12\n\n\n\nПояснение: всё хорошо\nDEBUG trace\n"


def test_default_rule() -> None:
    assert CleanupRule(r"^(?:System|Meta|Debug).*$", "gmi", "default") == DEFAULT_RULE
    assert apply(DEFAULT_RULE, ANSWER) == "Ответ: да\n\nПояснение: всё хорошо"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("", 0),
        ("g", 0),
        ("u", 0),
        ("m", re.MULTILINE),
        ("i", re.IGNORECASE),
        ("s", re.DOTALL),
        ("gmisu", re.MULTILINE | re.IGNORECASE | re.DOTALL),
        ("usimg", re.MULTILINE | re.IGNORECASE | re.DOTALL),
    ],
)
def test_js_flags_become_python_flags(flags: str, expected: int) -> None:
    all_bits = re.MULTILINE | re.IGNORECASE | re.DOTALL
    assert compile_rule("x", flags).flags & all_bits == expected


@pytest.mark.parametrize("flags", ["y", "x", "G", "gg", "mim", " ", "d", "g,m"])
def test_unknown_or_repeated_flags_are_refused(flags: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        compile_rule("x", flags)
    assert caught.value.reason == "INVALID_FLAGS"
    assert [violation.field for violation in caught.value.violations] == ["flags"]


@pytest.mark.parametrize(("pattern", "problem"), [("(", "missing )"), ("[a-", "unterminated"), ("a{2,1}", "min")])
def test_invalid_regexes_are_refused_with_the_error(pattern: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        compile_rule(pattern, "g")
    assert caught.value.reason == "INVALID_REGEX"
    assert problem in caught.value.violations[0].description
    assert caught.value.violations[0].field == "pattern"


def test_long_patterns_are_refused() -> None:
    compile_rule("a" * MAX_PATTERN_CHARS, "g")
    with pytest.raises(InvalidArgument) as caught:
        compile_rule("a" * (MAX_PATTERN_CHARS + 1), "g")
    assert caught.value.reason == "PATTERN_TOO_LONG"


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+",
        "(a*)*",
        "(a+)*b",
        "(?:x+y?)+",
        "(a{1,3})+",
        "((a+))*",
        "(?:a|b+)+",
        "(?=(a+)+)",
        "(?:(?:\\w+\\s?)+)$",
        "(a+){2}",
        "(a+?)+",
    ],
)
def test_nested_quantifiers_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        compile_rule(pattern, "g")
    assert caught.value.reason == "UNSAFE_REGEX"


# Backtracking that the static guard does not see: `re` would take hours on 30 characters.
CATASTROPHIC = CleanupRule("^(a|a)*$", "gm", "kv")
STUCK = "a" * 30 + "b"


def test_a_rule_that_runs_out_of_time_leaves_the_answer_uncleaned(caplog: pytest.LogCaptureFixture) -> None:
    answer = f"System: x\n{STUCK}\n\n\n\nend"
    assert apply(CATASTROPHIC, answer) == answer.replace("\n\n\n\n", "\n\n")
    assert "regex_cleanup rule ran out of time" in caplog.text


def test_a_streamed_answer_passes_uncleaned_once_the_rule_runs_out_of_time() -> None:
    cleaner = StreamCleaner(CATASTROPHIC)
    assert cleaner.incremental
    # The first line is cleaned (it is a line of a's, which the rule removes); the second stalls the rule.
    out = [cleaner.feed("aaa\n"), cleaner.feed(f"{STUCK}\n"), cleaner.feed("aa\n"), cleaner.finish()]
    assert "".join(out) == f"{STUCK}\naa"


def test_a_pattern_the_two_engines_would_read_differently_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        compile_rule("[[:alpha:]]+", "g")
    assert caught.value.reason == "INVALID_REGEX" and "nested set" in caught.value.message


@pytest.mark.parametrize(
    "pattern", [DEFAULT_RULE.pattern, "(ab)+", "a+b+", "(a{2})+", "(?:System|Meta)+", "(a+)?", "x*y*z*", ""]
)
def test_patterns_without_nested_quantifiers_are_accepted(pattern: str) -> None:
    compile_rule(pattern, "gm")


@pytest.mark.parametrize(
    ("rule", "text", "expected"),
    [
        (CleanupRule("x", "g", "kv"), "axbxc", "abc"),
        (CleanupRule("x", "", "kv"), "axbxc", "abxc"),
        (CleanupRule("X", "gi", "kv"), "axbXc", "abc"),
        (CleanupRule("X", "g", "kv"), "axbXc", "axbc"),
        (CleanupRule("^meta.*$", "m", "kv"), "a\nmeta 1\nmeta 2", "a\n\nmeta 2"),
        (CleanupRule("^meta.*", "", "kv"), "meta 1\nmeta 2", "meta 2"),
        (CleanupRule("^meta.*$", "", "kv"), "meta 1\nmeta 2", "meta 1\nmeta 2"),
        (CleanupRule("<think>.*?</think>", "gs", "kv"), "<think>a\nb</think>\n\nAnswer", "Answer"),
        (CleanupRule("zzz", "g", "kv"), "  \n\n a\n\n\n\n\nb \n\n ", "a\n\nb"),
        (CleanupRule("zzz", "g", "kv"), "a \n \n \n b", "a \n \n \n b"),
        (CleanupRule("zzz", "g", "kv"), " \t\n ", ""),
        (CleanupRule("Ответ: ", "gi", "kv"), "ОТВЕТ: да", "да"),
    ],
)
def test_apply(rule: CleanupRule, text: str, expected: str) -> None:
    assert apply(rule, text) == expected


def test_apply_refuses_a_bad_rule() -> None:
    with pytest.raises(InvalidArgument):
        apply(CleanupRule("(a+)+", "g", "kv"), "aaa")


def feed_all(rule: CleanupRule, deltas: list[str]) -> tuple[list[str], str]:
    cleaner = StreamCleaner(rule)
    return [cleaner.feed(delta) for delta in deltas], cleaner.finish()


def test_streaming_emits_each_line_once_it_is_complete() -> None:
    outputs, rest = feed_all(DEFAULT_RULE, ["System: x\nHel", "lo\nMeta z\n", "Wor", "ld\n", "debug!"])
    assert outputs == ["", "Hello", "", "\n\nWorld", ""]
    assert rest == ""
    assert "".join(outputs) + rest == apply(DEFAULT_RULE, "System: x\nHello\nMeta z\nWorld\ndebug!")


def test_streaming_holds_whitespace_until_text_follows() -> None:
    outputs, rest = feed_all(DEFAULT_RULE, ["\n\n  ", "a \n", "\n\n\n", "\n", "b", "\n  \n"])
    assert outputs == ["", "a", "", "", "", " \n\nb"]
    assert rest == ""


def test_streaming_a_rule_that_spans_lines_waits_for_the_end() -> None:
    rule = CleanupRule("<think>.*?</think>", "gs", "kv")
    cleaner = StreamCleaner(rule)
    assert not cleaner.incremental
    assert [cleaner.feed(delta) for delta in ["<think>a\n", "b</think>\n", "Answer\n"]] == ["", "", ""]
    assert cleaner.finish() == "Answer"


def test_a_finished_cleaner_refuses_more() -> None:
    cleaner = StreamCleaner(DEFAULT_RULE)
    cleaner.finish()
    with pytest.raises(RuntimeError):
        cleaner.feed("x")
    with pytest.raises(RuntimeError):
        cleaner.finish()


@pytest.mark.parametrize(
    ("pattern", "flags", "incremental"),
    [
        (DEFAULT_RULE.pattern, DEFAULT_RULE.flags, True),
        ("^debug:.*", "gm", True),
        ("[^\\n]+x", "g", True),
        ("(?<=: )\\w+", "g", True),
        ("\\bда\\b", "gi", True),
        ("^(?:System)?", "m", True),
        ("\\AAnswer: ", "", True),
        ("(?m:meta$)", "g", True),
        ("(a)?(?(1)c|d)", "g", True),
        ("[\\d\\w.,;:-]+", "g", True),
        ("^\\S+$", "gm", True),
        ("^meta.*$", "gi", False),  # `$` without `m` depends on where the text ends
        ("meta\\Z", "gm", False),
        (".+", "gs", False),
        ("(?s:.)", "g", False),
        ("a\\nb", "g", False),
        ("\\s+", "g", False),
        ("[^x]", "g", False),
        ("[\\x00-\\x20]", "g", False),
        ("\\W", "g", False),
        ("\\D", "g", False),
        ("(?=\\n)", "g", False),
        ("(?<=\\n)a", "g", False),
        ("^[^\\S\\n]+$", "gm", True),
    ],
)
def test_which_rules_stream_line_by_line(pattern: str, flags: str, incremental: bool) -> None:
    assert StreamCleaner(CleanupRule(pattern, flags, "kv")).incremental is incremental


STREAM_RULES = [
    DEFAULT_RULE,
    CleanupRule(r"^(?:System|Meta|Debug).*$", "mi", "kv"),
    CleanupRule(r"^meta\b.*", "gm", "kv"),
    CleanupRule(r"(?<=: )\w+", "g", "kv"),
    CleanupRule(r"\bда\b", "gi", "kv"),
    CleanupRule(r"^(?:System)?", "m", "kv"),
    CleanupRule(r"x*", "g", "kv"),
    CleanupRule(r"$", "m", "kv"),
    CleanupRule(r"\ASystem.*", "gm", "kv"),
    CleanupRule(r"^System", "g", "kv"),
    CleanupRule(r"^$", "m", "kv"),
    CleanupRule(r"^ *$", "gm", "kv"),
    CleanupRule(r"[^\S\n]+$", "gm", "kv"),
    CleanupRule(r"\s+", "g", "kv"),
    CleanupRule(r"^\s*$", "gm", "kv"),
    CleanupRule(r"System.*\n", "g", "kv"),
    CleanupRule(r"meta.*$", "gi", "kv"),
]
LINES = ["System: x", "meta y", "Meta", "Ответ: да", "да!", "", "  ", "\t", "DEBUG: z", "x: xx", "systemic"]


@st.composite
def split_texts(draw: st.DrawFn) -> tuple[str, list[str]]:
    lines = draw(st.lists(st.sampled_from(LINES), max_size=10))
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n", " ", "\n \n"]))
    if draw(st.booleans()):
        text = draw(st.text(alphabet="Sxy: \n\tmeta\u0434\u0430", max_size=40))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    bounds = [0, *cuts, len(text)]
    return text, [text[start:end] for start, end in itertools.pairwise(bounds)]


@settings(database=None, max_examples=400, deadline=None)
@given(rule=st.sampled_from(STREAM_RULES), case=split_texts())
def test_streaming_equals_cleaning_the_whole_text(rule: CleanupRule, case: tuple[str, list[str]]) -> None:
    text, deltas = case
    outputs, rest = feed_all(rule, deltas)
    assert "".join(outputs) + rest == apply(rule, text)


@settings(database=None, max_examples=200, deadline=None)
@given(case=split_texts())
def test_the_default_rule_emits_every_complete_line_before_the_end(case: tuple[str, list[str]]) -> None:
    text, deltas = case
    outputs, _ = feed_all(DEFAULT_RULE, [*deltas, "\nend"])
    # Everything up to the last newline is settled and already out, except trailing whitespace.
    assert "".join(outputs) == apply(DEFAULT_RULE, text + "\n")
