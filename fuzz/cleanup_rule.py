"""The `regex_cleanup` setting (`services.common.cleanup`): a caller's pattern and flags, and the streaming
cleaner that applies it to answers.

The input, as text split at NULs, is flags, a pattern, then the deltas of an answer.

- `compile_rule` returns a compiled pattern or raises InvalidArgument with one of its documented reasons.
- `StreamCleaner` keeps its promise: its outputs for the deltas, then `finish`, concatenate to `apply` of
  the whole answer.
"""

from __future__ import annotations

from services.common.cleanup import CleanupRule, StreamCleaner, apply, compile_rule
from services.common.errors import InvalidArgument

# Answers are kept short: a rule the unsafe-regex guard lets through can still backtrack for long on some text.
MAX_ANSWER_CHARS = 64


def TestOneInput(data: bytes) -> None:
    flags, _, rest = data.decode("utf-8", "replace").partition("\x00")
    pattern, _, answer = rest.partition("\x00")
    try:
        compile_rule(pattern, flags)
    except InvalidArgument as error:
        assert error.reason in ("INVALID_FLAGS", "PATTERN_TOO_LONG", "INVALID_REGEX", "UNSAFE_REGEX"), error.reason
        return
    rule = CleanupRule(pattern, flags, "kv")
    deltas = answer[:MAX_ANSWER_CHARS].split("\x00")
    cleaner = StreamCleaner(rule)
    streamed = "".join(cleaner.feed(delta) for delta in deltas) + cleaner.finish()
    assert streamed == apply(rule, "".join(deltas)), (streamed, deltas)
