r"""The `regex_cleanup` setting: a pattern with JavaScript-style flags that strips noise from LLM answers.

Cleaning removes the pattern's matches (all of them with `g`, else the first),
collapses runs of three or more newlines to two, and strips whitespace from
both ends of the whole answer. The pattern is Python's `re` dialect; the flags
are JavaScript's: `g` replace all, `m` multiline, `i` ignore case, `s` dot
matches newline, `u` accepted and ignored.

`StreamCleaner` cleans a streamed answer delta by delta with exactly the
result `apply` gives for the whole text. For a line-local rule it emits each
line once the line is complete; for any other rule it emits nothing until
`finish`. A rule is line-local when no part of it can match a newline (no
`\n`, `\s`, `[^x]`, `.` with `s`, ...) and nothing in it depends on where the
text ends (`\Z`, or `$` without `m`); the default rule is.

Patterns are checked with `re` (its dialect is the contract) but run on the
`regex` module, which matches the same way and can stop: a rule gets
MATCH_TIMEOUT_S per answer (per line when streamed). The static guard below
refuses the classic nested quantifiers, but backtracking can explode in
shapes no cheap check sees (`^(a|a)*$` on 30 characters takes hours), and
the rule runs inside the vision service's event loop. A rule that runs out of
time is given up for that answer, which is then sent uncleaned, and logged.
"""

from __future__ import annotations

import functools
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

# CPython's own regex parser (`sre_parse` before 3.11): the only way to see a pattern's structure.
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import regex as regex_engine

from services.common.errors import FieldViolation, InvalidArgument

logger = logging.getLogger(__name__)

MAX_PATTERN_CHARS = 1_000
# How long a rule may run on one answer (or one line of a streamed one) before it is given up.
MATCH_TIMEOUT_S = 0.1

_FLAG_BITS = {"g": 0, "m": re.MULTILINE, "i": re.IGNORECASE, "s": re.DOTALL, "u": 0}
_NEWLINE_RUNS = re.compile(r"\n{3,}")
_NEWLINE = ord("\n")


@dataclass(frozen=True, slots=True)
class CleanupRule:
    """A cleanup pattern, its flags, and where the setting came from."""

    pattern: str
    flags: str
    source: str  # "kv" or "default"


DEFAULT_RULE = CleanupRule(r"^(?:System|Meta|Debug).*$", "gmi", "default")


def compile_rule(pattern: str, flags: str) -> regex_engine.Pattern[str]:
    """The compiled pattern; raises `InvalidArgument` for a pattern or flags the service refuses.

    Reasons: `INVALID_FLAGS` (unknown or repeated flag), `PATTERN_TOO_LONG`,
    `INVALID_REGEX`, and `UNSAFE_REGEX` for a quantified group that contains a
    variable-length quantifier, such as `(a+)+` (a conservative guard against
    catastrophic backtracking: it also refuses some harmless patterns).
    """
    return _compiled(pattern, flags).regex


def apply(rule: CleanupRule, text: str) -> str:
    """The cleaned answer."""
    compiled = _compiled(rule.pattern, rule.flags)
    try:
        removed = compiled.regex.sub("", text, count=0 if compiled.replace_all else 1, timeout=MATCH_TIMEOUT_S)
    except TimeoutError:
        _log_timeout(rule, len(text))
        removed = text
    return _NEWLINE_RUNS.sub("\n\n", removed).strip()


def _log_timeout(rule: CleanupRule, chars: int) -> None:
    logger.warning(
        "regex_cleanup rule ran out of time; the answer is sent uncleaned",
        extra={"pattern": rule.pattern, "flags": rule.flags, "source": rule.source, "chars": chars},
    )


class StreamCleaner:
    """Cleans a streamed answer: `"".join(map(feed, deltas)) + finish() == apply(rule, "".join(deltas))`.

    Output for a line-local rule is held back to the last complete line, and
    whitespace until non-whitespace follows it; for other rules `feed` returns
    "" and `finish` returns the whole cleaned answer. `finish` is called once.
    """

    def __init__(self, rule: CleanupRule) -> None:
        self._rule = rule
        self._compiled = _compiled(rule.pattern, rule.flags)
        # The unfinished line, after the newline that ended the previous one: a leading "\n" gives
        # anchors and `\b` the context they would have in the whole text. `_start` skips it.
        self._line: list[str] = []
        self._start = 0
        self._removed_one = False
        # Set when the rule runs out of time: the rest of the answer passes uncleaned.
        self._gave_up = False
        self._tidier = _Tidier()
        self._finished = False

    @property
    def incremental(self) -> bool:
        """Whether `feed` emits output before `finish`."""
        return self._compiled.line_local

    def feed(self, delta: str) -> str:
        """The part of the cleaned answer that `delta` settles."""
        if self._finished:
            raise RuntimeError("StreamCleaner.feed after finish")
        self._line.append(delta)
        if not self._compiled.line_local or "\n" not in delta:
            return ""
        text = "".join(self._line)
        end = text.rfind("\n") + 1
        cleaned = self._remove(text, end, final=False)
        self._line = [text[end - 1 :]]
        self._start = 1
        return self._tidier.feed(cleaned)

    def finish(self) -> str:
        """The rest of the cleaned answer."""
        if self._finished:
            raise RuntimeError("StreamCleaner.finish called twice")
        self._finished = True
        text = "".join(self._line)
        if not self._compiled.line_local:
            return apply(self._rule, text)
        return self._tidier.feed(self._remove(text, len(text), final=True))

    def _remove(self, text: str, end: int, *, final: bool) -> str:
        """`text[self._start:end]` without the rule's matches; `end` follows a newline unless `final`."""
        if self._gave_up:
            return text[self._start : end]
        try:
            return self._matches_removed(text, end, final=final)
        except TimeoutError:
            self._gave_up = True
            _log_timeout(self._rule, len(text))
            return text[self._start : end]

    def _matches_removed(self, text: str, end: int, *, final: bool) -> str:
        regex, start = self._compiled.regex, self._start
        if self._compiled.replace_all:
            kept = []
            position = start
            for match in regex.finditer(text, start, end, timeout=MATCH_TIMEOUT_S):
                kept.append(text[position : match.start()])
                position = match.end()
            kept.append(text[position:end])
            return "".join(kept)
        if self._removed_one:
            return text[start:end]
        first = regex.search(text, start, end, timeout=MATCH_TIMEOUT_S)
        # `end` only looks like the end of the text; a match there is the next line's to find.
        if first is None or (first.start() == end and not final):
            return text[start:end]
        self._removed_one = True
        return text[start : first.start()] + text[first.end() : end]


class _Tidier:
    """Streams `_NEWLINE_RUNS` collapsing and whole-text stripping: emits up to the last non-whitespace."""

    def __init__(self) -> None:
        self._pending = ""
        self._started = False

    def feed(self, text: str) -> str:
        text = self._pending + text
        body = text.rstrip()
        self._pending = text[len(body) :]
        if not body:
            return ""
        if not self._started:
            body = body.lstrip()
            self._started = True
        # `body` ends in non-whitespace, so no newline run continues into the next piece.
        return _NEWLINE_RUNS.sub("\n\n", body)


@dataclass(frozen=True, slots=True)
class _Compiled:
    regex: regex_engine.Pattern[str]
    replace_all: bool
    line_local: bool


def _invalid(field: str, reason: str, problem: str) -> InvalidArgument:
    return InvalidArgument(
        f"invalid regex_cleanup {field}: {problem}", reason=reason, violations=(FieldViolation(field, problem),)
    )


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str, flags: str) -> _Compiled:
    bits = 0
    for index, flag in enumerate(flags):
        if flag not in _FLAG_BITS:
            raise _invalid("flags", "INVALID_FLAGS", f"unknown flag {flag!r} (allowed: g, m, i, s, u)")
        if flag in flags[:index]:
            raise _invalid("flags", "INVALID_FLAGS", f"flag {flag!r} appears twice")
        bits |= _FLAG_BITS[flag]
    if len(pattern) > MAX_PATTERN_CHARS:
        raise _invalid("pattern", "PATTERN_TOO_LONG", f"is longer than {MAX_PATTERN_CHARS} characters")
    try:
        # `re` warns where the two modules would read a pattern differently (`[[:alpha:]]` is a POSIX class
        # to `regex`, a set of characters to `re`): such a pattern is refused.
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            re.compile(pattern, bits)
        tree = sre_parse.parse(pattern, bits)
        unsafe = _has_nested_quantifier(tree.data, inside_repeat=False)
        line_local = _is_line_local(tree.data, tree.state.flags)
        compiled = regex_engine.compile(pattern, bits)
    except FutureWarning as warning:
        raise _invalid("pattern", "INVALID_REGEX", str(warning)) from None
    # `re` raises OverflowError for a repeat count such as {4294967296}; both parsers recurse per group.
    except (re.error, regex_engine.error, OverflowError) as error:
        raise _invalid("pattern", "INVALID_REGEX", str(error)) from None
    except RecursionError:
        raise _invalid("pattern", "INVALID_REGEX", "groups nest too deeply") from None
    if unsafe:
        raise _invalid("pattern", "UNSAFE_REGEX", "a repeated group contains a variable-length quantifier")
    return _Compiled(compiled, "g" in flags, line_local)


_REPEATS = frozenset({sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT})


# How to find the sub-patterns (each a list of `(op, av)` nodes) of each kind of parsed node.
_CHILDREN: dict[Any, Callable[[Any], list[Any]]] = {
    **dict.fromkeys(_REPEATS, lambda av: [av[2]]),
    sre.SUBPATTERN: lambda av: [av[3]],
    sre.BRANCH: lambda av: list(av[1]),
    sre.ASSERT: lambda av: [av[1]],
    sre.ASSERT_NOT: lambda av: [av[1]],
    sre.ATOMIC_GROUP: lambda av: [av],
    sre.GROUPREF_EXISTS: lambda av: [branch for branch in av[1:] if branch is not None],
}


def _children(op: Any, av: Any) -> list[Any]:
    extract = _CHILDREN.get(op)
    return [] if extract is None else extract(av)


def _has_nested_quantifier(nodes: Any, *, inside_repeat: bool) -> bool:
    for op, av in nodes:
        if op in _REPEATS:
            low, high, body = av
            if inside_repeat and high != low:
                return True
            if _has_nested_quantifier(body, inside_repeat=inside_repeat or high > 1):
                return True
        elif any(_has_nested_quantifier(child, inside_repeat=inside_repeat) for child in _children(op, av)):
            return True
    return False


_CATEGORIES_WITH_NEWLINE = frozenset(
    {sre.CATEGORY_SPACE, sre.CATEGORY_NOT_DIGIT, sre.CATEGORY_NOT_WORD, sre.CATEGORY_LINEBREAK}
)
_CATEGORIES_WITHOUT_NEWLINE = frozenset(
    {sre.CATEGORY_DIGIT, sre.CATEGORY_WORD, sre.CATEGORY_NOT_SPACE, sre.CATEGORY_NOT_LINEBREAK}
)


def _set_has_newline(items: Any) -> bool:
    negated = False
    found = False
    for op, av in items:
        if op == sre.NEGATE:
            negated = True
        elif op == sre.LITERAL:
            found = found or av == _NEWLINE
        elif op == sre.RANGE:
            found = found or av[0] <= _NEWLINE <= av[1]
        elif op == sre.CATEGORY and av in _CATEGORIES_WITH_NEWLINE | _CATEGORIES_WITHOUT_NEWLINE:
            found = found or av in _CATEGORIES_WITH_NEWLINE
        else:
            return True  # Unknown to this code: assume the worst.
    return found != negated


def _is_line_local(nodes: Any, flags: int) -> bool:
    """Whether every match lies within one line and depends only on that line and what precedes it.

    True when nothing in the pattern can match a newline (so neither a match
    nor a lookaround crosses one) and nothing depends on where the text ends
    (`\\Z`, or `$` without multiline). Then the rule can be applied line by
    line as lines complete.
    """
    for op, av in nodes:
        if op == sre.LITERAL:
            crosses = av == _NEWLINE
        elif op == sre.NOT_LITERAL:
            crosses = av != _NEWLINE
        elif op == sre.ANY:
            crosses = bool(flags & re.DOTALL)
        elif op == sre.IN:
            crosses = _set_has_newline(av)
        elif op == sre.AT:
            crosses = av == sre.AT_END_STRING or (av == sre.AT_END and not flags & re.MULTILINE)
        elif op == sre.SUBPATTERN:
            crosses = not _is_line_local(av[3], (flags | av[1]) & ~av[2])
        elif op in _CHILDREN:
            crosses = not all(_is_line_local(child, flags) for child in _children(op, av))
        elif op == sre.GROUPREF:
            crosses = False
        else:
            crosses = True
        if crosses:
            return False
    return True
