"""README.md's examples as data: the commands of its `sh` and `python` blocks, in order, each with what the
README says it answers.

The README's convention (stated under "Try it"): a comment at the end of a command says what it answers.

    # 201                                 the HTTP status (200 when none is given)
    # ["greeting"]                        the body as printed, byte for byte (trailing newlines aside)
    # 201 {"id":1,...}                    both; `...` stands for any text
    # 400: body is not valid JSON: ...    a status and the JSON error's `message`
    # Aborted: the entry changed: ...     grpcurl: a gRPC code name and the error's message
    # prints the model's answer           python: what the script prints

grpcurl's JSON is compared without its indentation. "the model's answer" stands for whatever the model
said (the fake provider's reply in the tests). A full-line comment is prose. A `make run` line (with
the variables before it) restarts the suite with that environment; other `make` targets, `docker
compose` and the `cp` of a file of the checkout are the project's tooling, which has tests of its own
(here, the target or file must exist); `NAME=value` lines set shell variables for the commands after
them. Anything else without an expectation is an error: the README
may not show a command that the test cannot check.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

WILDCARD = "..."
MODEL_ANSWER = "the model's answer"
# The code names grpcurl prints (`Code: Aborted`).
GRPC_CODES = frozenset(
    {
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    }
)
# The commands the README may show, by the tool they start with.
TOOLS = frozenset({"curl", "grpcurl"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_FENCE = re.compile(r"^```(\w*)\s*$")
_STATUS = re.compile(r"(?P<status>\d{3}|[A-Z][A-Za-z]+)(?::\s*(?P<message>.+)|\s+(?P<body>.+))?", re.DOTALL)

Kind = Literal["suite", "tooling", "assignment", "shell", "python"]


class ReadmeError(ValueError):
    """A README command the test cannot check; the message names its line."""


@dataclass(frozen=True, slots=True)
class Expectation:
    # An HTTP status (curl) or a gRPC code name (grpcurl); None: 200 or OK.
    status: int | str | None = None
    # A pattern for the error's message.
    message: str | None = None
    # A pattern for the output.
    body: str | None = None

    @classmethod
    def parse(cls, text: str) -> Expectation:
        text = text.strip()
        found = _STATUS.fullmatch(text)
        if found and (found["status"].isdigit() or found["status"] in GRPC_CODES):
            status: int | str = int(found["status"]) if found["status"].isdigit() else found["status"]
            return cls(status, found["message"], found["body"])
        return cls(body=text)


@dataclass(frozen=True, slots=True)
class Command:
    kind: Kind
    # The shell command (continuation lines joined, comment removed) or the python block's source.
    source: str
    # README line where it starts, for failure messages.
    line: int
    expectation: Expectation | None = None
    # For `make run`: the variables set before it.
    env: dict[str, str] = field(default_factory=dict)

    @property
    def tool(self) -> str:
        return self.source.split(maxsplit=1)[0]


def commands(markdown: str) -> list[Command]:
    """Every command of the README's `sh` and `python` blocks, in order; raises ReadmeError for one that
    cannot be checked."""
    found: list[Command] = []
    for language, first_line, lines in _blocks(markdown):
        if language == "sh":
            found.extend(_shell_commands(first_line, lines))
        elif language == "python":
            found.append(_python_command(first_line, lines))
    return found


def matches(pattern: str, text: str, answer: str) -> bool:
    """Whether `text` (trailing newlines aside) is `pattern`, where `...` is any text and "the model's
    answer" is `answer`."""
    pieces = [re.escape(piece.replace(MODEL_ANSWER, answer)) for piece in pattern.split(WILDCARD)]
    return re.fullmatch(".*?".join(pieces), text.rstrip("\n"), re.DOTALL) is not None


def compact_json(text: str) -> str:
    """JSON output without its indentation (grpcurl's); other text unchanged."""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        return text


def _blocks(markdown: str) -> Iterator[tuple[str, int, list[str]]]:
    language: str | None = None
    start = 0
    lines: list[str] = []
    for number, line in enumerate(markdown.splitlines(), start=1):
        fence = _FENCE.match(line)
        if fence and language is None:
            language, start, lines = fence[1], number + 1, []
        elif line.startswith("```") and language is not None:
            yield language, start, lines
            language = None
        elif language is not None:
            lines.append(line)


def _split_comment(line: str) -> tuple[str, str | None]:
    """A shell line's code and its trailing comment (a `#` after a blank, outside quotes)."""
    quote: str | None = None
    escaped = False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), None


def _shell_commands(first_line: int, lines: list[str]) -> Iterator[Command]:
    pending: list[str] = []
    start = first_line
    for number, line in enumerate(lines, start=first_line):
        code, comment = _split_comment(line)
        if not pending:
            start = number
        if not code.strip():
            if pending:
                raise ReadmeError(f"README.md:{number}: a comment or blank line inside a continued command")
            continue
        if code.endswith("\\"):
            pending.append(code[:-1].rstrip())
            if comment is not None:
                raise ReadmeError(f"README.md:{number}: a comment before a line continuation")
            continue
        pending.append(code.strip())
        yield _classify(" ".join(part.strip() for part in pending), comment, start)
        pending = []
    if pending:
        raise ReadmeError(f"README.md:{start}: the block ends inside a continued command")


def _classify(source: str, comment: str | None, line: int) -> Command:
    words = shlex.split(source)
    count = next((index for index, word in enumerate(words) if not _ASSIGNMENT.match(word)), len(words))
    settings, rest = words[:count], words[count:]
    if rest == ["make", "run"]:
        return Command("suite", source, line, env=dict(word.split("=", 1) for word in settings))
    if not rest:
        return Command("assignment", source, line)
    if rest[0] in ("make", "cp") or rest[:2] == ["docker", "compose"]:
        if settings:
            raise ReadmeError(f"README.md:{line}: only `make run` takes settings: {source}")
        return Command("tooling", source, line)
    if settings or rest[0] not in TOOLS:
        raise ReadmeError(f"README.md:{line}: not a command of {sorted(TOOLS)}: {source}")
    if comment is None:
        raise ReadmeError(f"README.md:{line}: no `# expectation` after the command: {source}")
    return Command("shell", source, line, Expectation.parse(comment))


def _python_command(first_line: int, lines: list[str]) -> Command:
    source = "\n".join(lines) + "\n"
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    last_line = max(token.start[0] for token in tokens if token.type == tokenize.NAME)
    comments = [t.string for t in tokens if t.type == tokenize.COMMENT and t.start[0] == last_line]
    if not comments or not comments[0].startswith("# prints "):
        raise ReadmeError(f"README.md:{first_line}: the python block's last line needs a `# prints ...` comment")
    return Command("python", source, first_line, Expectation(body=comments[0].removeprefix("# prints ")))
