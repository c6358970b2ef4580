"""Code fences come off a JSON answer, and a stream strips them exactly as the whole text would be."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.llm.providers.fences import FenceStripper, strip_fences


def streamed(*deltas: str) -> list[str]:
    """What a stripper returns for each delta, then for finish()."""
    stripper = FenceStripper()
    return [*(stripper.feed(delta) for delta in deltas), stripper.finish()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```json\n{"ok": true}\n```', '{"ok": true}'),
        ('```\n{"ok": true}\n```', '{"ok": true}'),
        ('  \n```JSON  \r\n{"ok": true}\r\n```\n\n', '{"ok": true}'),
        ('```json\n{"a": [1,\n  2]}\n```', '{"a": [1,\n  2]}'),
        # Cut short by max_tokens: the opening fence goes, the rest stays as it came.
        ('```json\n{"a": 1,\n', '{"a": 1,\n'),
        ("```json\n```", ""),
        ("```json\nx````", "x`"),
    ],
)
def test_a_leading_fence_and_its_closing_fence_are_removed(text: str, expected: str) -> None:
    assert strip_fences(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"ok": true}',
        '{"ok": true}\n```',
        "",
        "   ",
        'Here it is:\n```json\n{"ok": true}\n```',
        '```json {"ok": true}```',
        "``json\n{}",
        "```json!\n{}\n```",
    ],
)
def test_text_that_does_not_open_with_a_fence_line_is_unchanged(text: str) -> None:
    assert strip_fences(text) == text


def test_unfenced_deltas_pass_through_at_once() -> None:
    assert streamed('{"ok"', ": true}", "\n```") == ['{"ok"', ": true}", "\n```", ""]


def test_a_fenced_stream_holds_back_only_what_may_still_be_the_fence() -> None:
    assert streamed("``", "`js", "on\n{", '"a": 1', "}\n`", "``", "\n") == ["", "", "{", '"a": 1', "}", "", "", ""]


def test_backticks_inside_the_fence_come_out_once_text_follows_them() -> None:
    assert streamed("```\na\n``", "` b", "\n```") == ["a", "\n``` b", "", ""]


def test_an_unclosed_fence_keeps_its_held_back_tail() -> None:
    assert streamed("```json\n{}", "\n``") == ["{}", "", "\n``"]


def test_a_stream_that_never_decides_gives_back_its_start() -> None:
    assert streamed(" \n``", "`json") == ["", "", " \n```json"]


# Text built from the characters that matter to fences, and from whole fence lines.
_pieces = st.one_of(
    st.sampled_from(["```json\n", "```\n", "\n```", "```", "\r\n", '{"a": 1}', "json"]),
    st.text(alphabet=' \t\r\n`jsonJ{}"a1!', max_size=6),
)
_texts = st.lists(_pieces, max_size=8).map("".join)


@st.composite
def _split(draw: st.DrawFn) -> list[str]:
    text = draw(_texts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    bounds = [0, *cuts, len(text)]
    return [text[start:end] for start, end in itertools.pairwise(bounds)]


@given(_split())
def test_any_split_of_a_stream_gives_the_whole_text_stripped(deltas: list[str]) -> None:
    assert "".join(streamed(*deltas)) == strip_fences("".join(deltas))


@given(_split())
def test_nothing_is_held_back_once_the_text_so_far_cannot_end_in_a_fence(deltas: list[str]) -> None:
    stripper = FenceStripper()
    returned = ""
    for index, delta in enumerate(deltas):
        returned += stripper.feed(delta)
        so_far = "".join(deltas[: index + 1])
        # None of these can be part of a fence line, opening or closing.
        if so_far and so_far[-1] in '{}"!':
            assert returned == strip_fences(so_far)
