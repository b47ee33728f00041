"""The built-in tools: safe enough to run without asking (they read the clock and do
arithmetic), so their approval policy is "never"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .calculator import calculate
from .tool import Tool, ToolFailed


def current_time(arguments: dict) -> str:
    name = arguments.get("timezone")
    if name:
        try:
            zone = ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolFailed(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris") from None
    else:
        zone = UTC
    now = datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({now:%A}, {zone})"


def calculator(arguments: dict) -> str:
    return str(calculate(str(arguments["expression"])))


BUILTIN_TOOLS: tuple[tuple[Tool, Callable[[dict], str]], ...] = (
    (
        Tool(
            name="current_time",
            description="The current date and time, in UTC or in the given IANA time zone.",
            parameters={
                "type": "object",
                "properties": {
                    "timezone": {"type": "string", "description": "An IANA time zone, e.g. Europe/Paris."}
                },
            },
            source="builtin",
            approval="never",
        ),
        current_time,
    ),
    (
        Tool(
            name="calculator",
            description="Evaluate an arithmetic expression (+ - * / // % **, sqrt, log, sin, pi, ...).",
            parameters={
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "For example 2 * (3 + 4)."}},
                "required": ["expression"],
            },
            source="builtin",
            approval="never",
        ),
        calculator,
    ),
)
