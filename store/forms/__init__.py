"""The report forms as data: one YAML file per kind of report (see founded.yaml for the
schema), checked against domain.forms when loaded: the questions, and what each answer means
for the plan (the step it completes, the target it counts toward, its workbook column)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from domain.forms import Form, Question

FOLDER = Path(__file__).parent


class FormError(ValueError):
    """A form file the bot refuses, with the file's name and what is wrong in it."""


_FORM = TypeAdapter(Form)
_QUESTION = TypeAdapter(Question)


def _renamed(question: dict[str, Any]) -> dict[str, Any]:
    """`in:` of a condition is `in_` in Python."""
    condition = question.get("ask_if")
    if isinstance(condition, dict) and "in" in condition:
        condition = {("in_" if k == "in" else k): v for k, v in condition.items()}
        return {**question, "ask_if": condition}
    return question


def parse_form(data: Any) -> Form:
    """A form from a YAML document; pydantic.ValidationError names what is wrong."""
    if isinstance(data, dict):
        data = {
            **data,
            **{
                key: [_renamed(q) if isinstance(q, dict) else q for q in data[key]]
                for key in ("questions", "each_item")
                if isinstance(data.get(key), list)
            },
        }
    return _FORM.validate_python(data)


def parse_question(data: dict[str, Any]) -> Question:
    """One question as a form's file writes it."""
    return _QUESTION.validate_python(_renamed(data))


@lru_cache(maxsize=1)
def load_forms(folder: Path = FOLDER) -> dict[str, Form]:
    forms: dict[str, Form] = {}
    for path in sorted(folder.glob("*.yaml")):
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        try:
            form = parse_form(data)
        except ValidationError as exc:
            raise FormError(f"{path.name}: {exc}") from exc
        forms[form.form] = form
    return forms
