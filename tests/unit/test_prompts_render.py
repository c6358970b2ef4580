"""Prompt templates: `{{name}}` placeholders, filled once, literally, within a size cap."""

from __future__ import annotations

import pytest

from services.common.errors import FieldViolation, InvalidArgument
from services.prompts.render import DEFAULT_MAX_CHARS, placeholders, render


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("Hello, {{name}}!", {"name": "Ada"}, "Hello, Ada!"),
        ("{{ name }}|{{name }}|{{\tname}}", {"name": "x"}, "x|x|x"),
        ("{{a}}{{b}}{{a}}", {"a": "1", "b": "2"}, "121"),
        ("{{user.first_name}} {{user-id}} {{_x9}}", {"user.first_name": "A", "user-id": "7", "_x9": "z"}, "A 7 z"),
        ("no placeholders", {}, "no placeholders"),
        ("", {}, ""),
        ("{{a}}", {"a": ""}, ""),
        ("unused is fine: {{a}}", {"a": "1", "b": "2"}, "unused is fine: 1"),
        ("Привет, {{имя}}", {}, "Привет, {{имя}}"),
        (
            "Привет, {{name}}! Ваш вопрос: {{ вопрос }} {{q}}",
            {"name": "Мария", "q": "что такое «Спарк»?"},
            "Привет, Мария! Ваш вопрос: {{ вопрос }} что такое «Спарк»?",
        ),
    ],
)
def test_fills_placeholders(template: str, variables: dict[str, str], expected: str) -> None:
    assert render(template, variables) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{{{x}}}}", "{{V}}"),
        ("{{{x}}}", "{V}"),
        ("{{{{", "{{{{"),
        ("}}{{", "}}{{"),
        ("{x} {{ }} {{}} {{1x}} {{x y}} {{-x}}", "{x} {{ }} {{}} {{1x}} {{x y}} {{-x}}"),
        ("{{x\n}}", "{{x\n}}"),
        ("{{x}}}", "V}"),
        ("{ {x} }", "{ {x} }"),
    ],
)
def test_braces_that_are_not_placeholders_stay_literal(template: str, expected: str) -> None:
    assert render(template, {"x": "V"}) == expected


def test_values_are_inserted_literally_and_never_expanded_again() -> None:
    variables = {"a": "{{b}}", "b": "B", "c": r"\1 \g<0> $1 {{ a }}"}
    assert render("{{a}} {{b}} {{c}}", variables) == r"{{b}} B \1 \g<0> $1 {{ a }}"


def test_every_missing_variable_is_reported_sorted() -> None:
    with pytest.raises(InvalidArgument) as caught:
        render("{{zeta}} {{alpha}} {{given}} {{beta.x}} {{alpha}}", {"given": "ok"})
    error = caught.value
    assert error.reason == "MISSING_VARIABLE"
    assert error.violations == (
        FieldViolation("variables.alpha", "is used by the template but not given"),
        FieldViolation("variables.beta.x", "is used by the template but not given"),
        FieldViolation("variables.zeta", "is used by the template but not given"),
    )
    assert "alpha, beta.x, zeta" in error.message


def test_names_are_case_sensitive() -> None:
    with pytest.raises(InvalidArgument) as caught:
        render("{{Name}}", {"name": "x"})
    assert [v.field for v in caught.value.violations] == ["variables.Name"]


def test_placeholders_are_unique_in_order_of_appearance() -> None:
    assert placeholders("{{b}} {{ a }} {{b}} {{c.d}} {{{{a}}}} {{1}} {{имя}}") == ["b", "a", "c.d"]
    assert placeholders("plain") == []


def test_the_rendered_text_may_be_exactly_max_chars() -> None:
    assert render("ab{{x}}", {"x": "cd"}, max_chars=4) == "abcd"
    assert len(render("{{x}}", {"x": "я" * DEFAULT_MAX_CHARS})) == DEFAULT_MAX_CHARS


@pytest.mark.parametrize(
    ("template", "variables"),
    [
        ("ab{{x}}", {"x": "cde"}),
        ("{{x}}abc", {"x": "de"}),
        ("abcde", {}),
        ("{{x}}" * 1000, {"x": "яя"}),
    ],
)
def test_longer_output_is_refused(template: str, variables: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        render(template, variables, max_chars=4)
    assert caught.value.reason == "RENDERED_TOO_LONG"
    assert caught.value.metadata == {"max_chars": "4"}


def test_default_cap_is_100_000_characters() -> None:
    with pytest.raises(InvalidArgument) as caught:
        render("{{x}}!", {"x": "a" * DEFAULT_MAX_CHARS})
    assert caught.value.metadata == {"max_chars": "100000"}
