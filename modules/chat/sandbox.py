"""Rendering chat templates in a sandbox: a template from a downloaded model is untrusted.

Hugging Face chat templates expect Jinja2 with `trim_blocks`/`lstrip_blocks`, the
`loopcontrols` extension, `raise_exception`, `strftime_now` and a `tojson` that keeps
non-ASCII text. The immutable sandbox stops attribute tricks and mutation; on top of that we
bound the work a template may do (output size, a deadline checked on every call, attribute
access, loop step and chunk of output, and the size of `*` and `**` results), so a
hostile or broken template becomes an InvalidRequest instead of a hung or crashed server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from modules.errors import InvalidRequest

MAX_OUTPUT_CHARS = 4_000_000
MAX_SECONDS = 2.0
MAX_SEQUENCE = 1_000_000  # longest string or list a `*` may build
MAX_RANGE = 100_000


class TemplateError(Exception):
    """Raised inside a render: by `raise_exception`, or when a limit is hit."""


class _Budget:
    """The work one render may still do."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError("the template took too long to render")


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**"])

    def __init__(self, budget: _Budget) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.loopcontrols"],
            undefined=jinja2.Undefined,
        )
        self.budget = budget
        self.globals.update(
            raise_exception=_raise_exception,
            strftime_now=lambda fmt: datetime.now().strftime(fmt),
            range=self._range,
        )
        self.filters["tojson"] = _tojson

    def _range(self, *args: int) -> Iterator[int]:
        numbers = range(*args)
        if len(numbers) > MAX_RANGE:
            raise TemplateError(f"range() is limited to {MAX_RANGE} items")
        for i in numbers:
            self.budget.check()
            yield i

    def call(self, context: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
        self.budget.check()
        return super().call(context, obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.budget.check()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.budget.check()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.budget.check()
        if operator == "**":
            too_big = isinstance(left, int) and left.bit_length() > 4096
            if too_big or (isinstance(right, int | float) and abs(right) > 64):
                raise TemplateError("number too large")
            return left**right
        if isinstance(left, int) and isinstance(right, str | list | tuple):
            left, right = right, left
        sequence = isinstance(left, str | list | tuple) and isinstance(right, int)
        if sequence and len(left) * right > MAX_SEQUENCE:
            raise TemplateError("sequence too large")
        return left * right


def _raise_exception(message: str) -> None:
    raise TemplateError(str(message))


def _tojson(
    value: Any,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    # Hugging Face's tojson: no HTML escaping, non-ASCII kept as is.
    return json.dumps(
        value,
        ensure_ascii=False,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
    )


def render(
    source: str,
    variables: Mapping[str, Any],
    *,
    what: str = "instruction template",
    max_seconds: float = MAX_SECONDS,
) -> str:
    """Render template `source` with `variables`; InvalidRequest on any failure or limit."""
    budget = _Budget(max_seconds)
    env = _BoundedEnvironment(budget)
    try:
        template = env.from_string(source)
        out: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError(f"the output is longer than {MAX_OUTPUT_CHARS} characters")
            budget.check()
            out.append(chunk)
        return "".join(out)
    except TemplateError as e:
        raise _failed(what, str(e)) from e
    except jinja2.TemplateSyntaxError as e:
        raise InvalidRequest(
            f"The {what} has a syntax error on line {e.lineno}: {e.message}.",
            param="instruction_template",
        ) from e
    except (jinja2.TemplateError, RecursionError, MemoryError, ArithmeticError) as e:
        raise _failed(what, str(e)) from e
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
        raise _failed(what, f"{type(e).__name__}: {e}") from e


def _failed(what: str, reason: str) -> InvalidRequest:
    reason = reason.rstrip(".") or "unknown error"
    return InvalidRequest(f"The {what} failed: {reason}.", param="instruction_template")


def variables_used(source: str) -> frozenset[str]:
    """The top-level variables a template reads (e.g. to know whether it renders `tools`)."""
    from jinja2 import meta

    try:
        ast = ImmutableSandboxedEnvironment().parse(source)
    except jinja2.TemplateSyntaxError:
        return frozenset()
    return frozenset(meta.find_undeclared_variables(ast))
