"""Arithmetic for the built-in calculator: parsed with `ast`, never `eval`, with bounds so
that no expression makes the server work for long (`9**9**9`) or build huge numbers."""

from __future__ import annotations

import ast
import math
import operator

from .tool import ToolFailed

MAX_EXPONENT = 1000
MAX_DIGITS = 1000  # of an integer result, at every step
MAX_LENGTH = 500  # characters of an expression

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression: + - * / // % **, parentheses, numbers, the
    constants pi and e and a few functions (sqrt, abs, round, floor, ceil, log, log10, exp,
    sin, cos, tan, min, max)."""
    if len(expression) > MAX_LENGTH:
        raise ToolFailed(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ToolFailed(f"not an arithmetic expression: {expression!r}") from None
    try:
        return _value(tree.body)
    except ZeroDivisionError:
        raise ToolFailed("division by zero") from None
    except (ValueError, OverflowError, TypeError) as e:
        raise ToolFailed(str(e)) from None


def _value(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolFailed(f"exponents are limited to {MAX_EXPONENT}")
        return _bounded(_BINARY[type(node.op)](left, right))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _bounded(_FUNCTIONS[node.func.id](*(_value(arg) for arg in node.args)))
    raise ToolFailed(f"not allowed in an expression: {ast.unparse(node)!r}")


def _bounded(value):
    if isinstance(value, complex):
        raise ToolFailed("the result is a complex number")
    if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
        raise ToolFailed(f"the result has more than {MAX_DIGITS} digits")
    return value
