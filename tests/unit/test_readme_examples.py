"""README.md's examples can be checked: every command says what it answers, in the README's convention
(tests/support/readme.py), which tests/e2e/test_readme.py runs against the suite."""

from __future__ import annotations

import pytest

from tests.support.readme import Expectation, ReadmeError, commands, compact_json, matches
from tests.support.suite import ROOT


def test_every_readme_command_has_an_expectation_or_is_a_known_kind() -> None:
    found = commands((ROOT / "README.md").read_text(encoding="utf-8"))
    kinds = [command.kind for command in found]
    assert kinds[0] == "suite", "the README starts the suite before anything else"
    assert {"suite", "tooling", "assignment", "shell", "python"} <= set(kinds)
    assert all(c.expectation is not None for c in found if c.kind in ("shell", "python"))


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("201", Expectation(201)),
        ('["greeting"]', Expectation(body='["greeting"]')),
        ('201 {"id":1,...}', Expectation(201, body='{"id":1,...}')),
        ("400: body is not valid JSON: ...", Expectation(400, message="body is not valid JSON: ...")),
        ("Aborted: the entry changed: ...", Expectation("Aborted", message="the entry changed: ...")),
        ("grpc.health.v1.Health...", Expectation(body="grpc.health.v1.Health...")),
        # A capitalised first word that is no gRPC code is part of the body.
        ("Hello world", Expectation(body="Hello world")),
    ],
)
def test_expectations_are_a_status_a_message_or_a_body(comment: str, expected: Expectation) -> None:
    assert Expectation.parse(comment) == expected


def test_patterns_match_whole_answers_with_wildcards() -> None:
    assert matches('{"hello":"world"}', '{"hello":"world"}\n', "")
    assert not matches('{"hello":"world"}', '{"hello":"world"} ', "")
    assert not matches('{"a":1}', '{"a":1,"b":2}', "")
    assert matches('{"a":1,...}', '{"a":1,"b":2}', "")
    assert matches("data: {...}...data: [DONE]", 'data: {"x":1}\n\ndata: {}\n\ndata: [DONE]\n\n', "")
    assert matches("a.b*c", "a.b*c", "") and not matches("a.b*c", "axbbc", "")
    assert matches("the model's answer", "Hi there", "Hi there")


def test_grpcurl_json_is_compared_without_its_indentation() -> None:
    assert compact_json('{\n  "entry": {\n    "key": "ключ"\n  }\n}\n') == '{"entry":{"key":"ключ"}}'
    assert compact_json("spark.kv.v1.KvService\n") == "spark.kv.v1.KvService\n"


def test_commands_are_read_with_their_continuations_variables_and_comments() -> None:
    found = commands(
        "```sh\n"
        "A=1 B='two words' make run   # prose\n"
        "T='X-Admin-Token: a#b'\n"
        "# a full-line comment is prose\n"
        "curl -s 'http://h/a%23b?x=#y' \\\n"
        "  -d '{\"#\":1}'   # 201 {...}\n"
        "```\n"
    )
    assert [(c.kind, c.line) for c in found] == [("suite", 2), ("assignment", 3), ("shell", 5)]
    assert found[0].env == {"A": "1", "B": "two words"}
    assert found[2].source == "curl -s 'http://h/a%23b?x=#y' -d '{\"#\":1}'"
    assert found[2].expectation == Expectation(201, body="{...}")


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("```sh\ncurl -s http://h/\n```\n", "no `# expectation`"),
        ("```sh\nwget http://h/   # 200\n```\n", "not a command of"),
        ("```sh\nA=1 curl http://h/   # 200\n```\n", "not a command of"),
        ("```sh\nA=1 make test\n```\n", "only `make run` takes settings"),
        ("```sh\ncurl -s http://h/ \\\n```\n", "ends inside a continued command"),
        ("```python\nprint('hi')\n```\n", "`# prints ...` comment"),
    ],
)
def test_a_command_that_cannot_be_checked_is_an_error(block: str, problem: str) -> None:
    with pytest.raises(ReadmeError, match=problem):
        commands(block)
