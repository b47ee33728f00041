"""Rendering chat templates in a sandbox: a template from a downloaded model, or sent in a
request (`instruction_template_str`), is untrusted.

Hugging Face chat templates expect Jinja2 as transformers sets it up (its
`chat_template_utils`): `trim_blocks`/`lstrip_blocks`, the `loopcontrols` extension, a
`{% generation %}` block, `raise_exception`, `strftime_now`, a `namespace` that refuses
`_`-names and a `tojson` that keeps non-ASCII text unless told `ensure_ascii=True`. Hearth
renders what that environment renders, byte for byte (tests/chat/test_real_templates.py
checks it on llama.cpp's collection of real templates). The immutable sandbox stops
attribute tricks and mutation. On top of it we bound the work a template may do, so that a
hostile or broken template becomes an InvalidRequest instead of a hung or crashed server:

- time: a deadline, checked on every call, attribute access, loop step and output chunk;
- size: no value a template builds (by `~`, `+`, `*`, `%`, a call, a filter, a captured
  block) may be longer than MAX_VALUE, and everything it builds and outputs together may not
  exceed MAX_ALLOCATED. Operations that could build a huge value from small inputs
  (`'x'.zfill(10**9)`, `'{:>999999999}'.format(1)`, `s.replace('', s)`, `|indent(10**9)`,
  ...) are checked before they run, so the memory is never taken;
- output: at most MAX_OUTPUT_CHARS.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from types import CodeType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from modules.errors import InvalidRequest

MAX_OUTPUT_CHARS = 4_000_000
MAX_VALUE = 4_000_000  # longest string (or list, in items) a template may build
MAX_ALLOCATED = 64_000_000  # all it builds and outputs in one render, in characters
MAX_SECONDS = 2.0
MAX_RANGE = 100_000
MAX_JSON_INDENT = 64

# A width or precision of 7+ digits, or one taken from the arguments (`*`, nested `{}`),
# in a `%` or `str.format` format string.
_WIDE_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?:\*|\d{7,}|\d*\.(?:\*|\d{7,}))")
_WIDE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*(?:\d{7,}|\{)")


class TemplateError(Exception):
    """Raised inside a render: by `raise_exception`, or when a limit is hit."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | dict) else 0


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


class _Budget:
    """The work one render may still do."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.allocated = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError("the template took too long to render")

    def allow(self, size: int) -> None:
        """Before building a value of `size`: refuse what would be too big."""
        if size > MAX_VALUE:
            raise TemplateError(f"the template built a value longer than {MAX_VALUE} characters")
        self.allocated += size
        if self.allocated > MAX_ALLOCATED:
            raise TemplateError(f"the template built more than {MAX_ALLOCATED} characters of text")

    def built(self, value: Any) -> Any:
        """After building `value`: count it."""
        self.allow(_size(value))
        return value


# --- What an operation would build, estimated from its inputs before it runs -----------------


def _format_string(text: Any, wide: re.Pattern) -> None:
    if isinstance(text, str) and wide.search(text):
        raise TemplateError("a format width or precision is too large")


def _replaced(s: str, old: str, new: str, count: int = -1, *_: Any) -> int:
    hits = len(s) + 1 if old == "" else s.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * max(len(new) - len(old), 0)


def _joined(separator: str, items: list) -> int:
    texts = sum(len(x) if isinstance(x, str) else 8 * max(_size(x), 1) for x in items)
    return texts + len(separator) * max(len(items) - 1, 0)


def _indented(s: str, width: Any = 4, *_: Any, **__: Any) -> int:
    per_line = len(width) if isinstance(width, str) else _int(width)
    return len(s) + (s.count("\n") + 1) * max(per_line, 0)


# name -> the size of what it would build, for str methods and filters of the same meaning
_STR_METHODS: dict[str, Callable[..., int]] = {
    "zfill": lambda s, width, *_: max(len(s), _int(width)),
    "ljust": lambda s, width, *_: max(len(s), _int(width)),
    "rjust": lambda s, width, *_: max(len(s), _int(width)),
    "center": lambda s, width, *_: max(len(s), _int(width)),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count("\t") * max(_int(tabsize), 0),
    "replace": _replaced,
    "translate": lambda *_: MAX_VALUE + 1,  # a table can map a character to any text
}
_FILTERS: dict[str, Callable[..., int]] = {
    "center": lambda s, width=80, *_: max(len(str(s)), _int(width)),
    "indent": lambda s, *args, **kw: _indented(str(s), *args, **kw),
    "replace": lambda s, old, new, count=None, *_: _replaced(str(s), str(old), str(new), _int(count) or -1),
    "batch": lambda value, linecount, *_: _int(linecount),
    "slice": lambda value, slices, *_: _int(slices) * 1000,  # each slice is a list of its own
    "tojson": lambda value, ensure_ascii=False, indent=None, *_, **kw: (
        MAX_VALUE + 1 if _int(kw.get("indent", indent)) > MAX_JSON_INDENT else 0
    ),
}


_JINJA_CALL_KEYWORDS = frozenset(("_loop_vars", "_block_vars"))


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles `a ~ b` to a join that checks its size first."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _GenerationBlock(Extension):
    """`{% generation %}...{% endgeneration %}`: transformers marks the assistant's part of a
    training example with it; in a prompt it is just its body. Kept a call block, as in
    transformers, so that a `{% set %}` inside stays inside."""

    tags = frozenset(("generation",))

    def parse(self, parser: Parser) -> nodes.CallBlock:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    @staticmethod
    def _body(caller: Callable[[], str]) -> str:
        return caller()


class _Namespace(Namespace):
    """transformers' `namespace`: no attribute whose name starts with `_`, so that nothing a
    template stores can pass for Python internals."""

    # `self` taken from `args`, as Namespace does, so that `namespace(self=...)` still works.
    def __init__(*args: Any, **kwargs: Any) -> None:
        self, args = args[0], args[1:]
        attributes = dict(*args, **kwargs)
        for name in attributes:
            _Namespace._check(name)
        Namespace.__init__(self, attributes)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check(name)
        Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"a namespace cannot hold an attribute starting with '_' ({name!r})"
            )


# The syntax chat templates are written for, as transformers configures Jinja.
_SYNTAX: dict[str, Any] = {
    "trim_blocks": True,
    "lstrip_blocks": True,
    "extensions": ["jinja2.ext.loopcontrols", _GenerationBlock],
}


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "+", "%"])
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        super().__init__(
            **_SYNTAX,
            undefined=jinja2.Undefined,
            finalize=self._output,  # every `{{ ... }}` counts
        )
        self.concat = self._concat  # captured blocks, macro bodies
        del self.globals["lipsum"]  # lipsum(n=10**9)
        self.globals.update(
            raise_exception=_raise_exception,
            strftime_now=lambda fmt: datetime.now().strftime(fmt),
            range=self._range,
            namespace=_Namespace,
        )
        self.filters["tojson"] = _tojson
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}

    # --- building values ---------------------------------------------------------------------

    def _output(self, value: Any) -> str:
        text = value if isinstance(value, str) else str(value)
        self.budget.allow(len(text))
        return text

    def _concat(self, parts: Any) -> str:
        parts = list(parts)
        self.budget.allow(sum(map(len, parts)))
        return "".join(parts)

    def join_parts(self, values: tuple) -> str:
        texts = [v if isinstance(v, str) else str(v) for v in values]
        self.budget.allow(sum(map(len, texts)))
        return "".join(texts)

    def _range(self, *args: int) -> Iterator[int]:
        numbers = range(*args)
        if len(numbers) > MAX_RANGE:
            raise TemplateError(f"range() is limited to {MAX_RANGE} items")
        for i in numbers:
            self.budget.check()
            yield i

    def _bounded_filter(self, name: str, function: Callable) -> Callable:
        estimate = _FILTERS.get(name)
        passes_first = getattr(function, "jinja_pass_arg", None) is not None
        budget = self.budget

        @functools.wraps(function)  # keeps jinja's pass_context/pass_environment mark
        def bounded(*args: Any, **kwargs: Any) -> Any:
            budget.check()
            own = args[1:] if passes_first else args
            if name == "format" and own:
                _format_string(own[0], _WIDE_PERCENT)
            if name == "join" and own:  # look at the items once, then join those
                items = list(own[0])
                budget.allow(_joined(str(own[1]) if len(own) > 1 else kwargs.get("d", ""), items))
                args = (*args[: len(args) - len(own)], items, *own[1:])
            elif estimate is not None and own:
                budget.allow(estimate(*own, **kwargs))
            return budget.built(function(*args, **kwargs))

        return bounded

    # --- the sandbox's interception points -------------------------------------------------------

    def call(self, context: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
        self.budget.check()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(obj, "__name__", "")
            if name == "join" and args:
                items = list(args[0])
                self.budget.allow(_joined(owner, items))
                args = (items, *args[1:])
            elif name in _STR_METHODS:
                # Inside a loop or block, Jinja adds its own `_loop_vars`/`_block_vars`
                # keywords (the context drops them before the real call): not the method's.
                own = {k: v for k, v in kwargs.items() if k not in _JINJA_CALL_KEYWORDS}
                self.budget.allow(_STR_METHODS[name](owner, *args, **own))
        return self.budget.built(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map`, which the sandbox hands out wrapped: the format
        string is checked when the method is looked up."""
        if getattr(value, "__name__", "") in ("format", "format_map"):
            _format_string(getattr(value, "__self__", None), _WIDE_FORMAT)
        return super().wrap_str_format(value)

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
        if operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                self.budget.allow(len(left) + len(right))
            return left + right
        if operator == "%":
            _format_string(left, _WIDE_PERCENT)
            return self.budget.built(left % right)
        if isinstance(left, int) and isinstance(right, str | list | tuple):
            left, right = right, left
        if isinstance(left, str | list | tuple) and isinstance(right, int):
            self.budget.allow(len(left) * max(right, 0))
        return left * right


def _raise_exception(message: str) -> None:
    raise TemplateError(str(message))


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    # transformers' tojson, arguments in its order: no HTML escaping, non-ASCII kept unless
    # asked otherwise (GLM and MiniMax templates pass ensure_ascii=False explicitly).
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
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
        template = env.template_class.from_code(env, _compiled(source), env.make_globals(None))
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


# Compiling a real chat template takes 10-50 ms here, and one request renders its template
# several times (the prompt, the stop strings, the system-role check). The compiled code
# depends on the source alone (every sandbox is set up alike and is passed in at run time,
# with its own budget), so a few recent ones are kept: a cache of a pure function.
@functools.lru_cache(maxsize=16)
def _compiled(source: str) -> CodeType:
    # An expired deadline: Jinja calls filters (and attribute lookups) on constants while
    # compiling, to fold them into the code; those calls fail at once here, so nothing big is
    # ever built into cached code, and every filter runs at render time, within its budget.
    return _BoundedEnvironment(_Budget(-1.0)).compile(source)


@functools.lru_cache(maxsize=16)
def variables_used(source: str) -> frozenset[str]:
    """The top-level variables a template reads (e.g. to know whether it renders `tools`)."""
    from jinja2 import meta

    try:
        ast = ImmutableSandboxedEnvironment(**_SYNTAX).parse(source)
    except jinja2.TemplateSyntaxError:
        return frozenset()
    return frozenset(meta.find_undeclared_variables(ast))
