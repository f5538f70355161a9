"""Declaring a command-line option on the config field it fills, and the converters options use.

A field of a stage config (`distill.configs`) that is also a `distill <stage>` option carries its
flag names and help text:

    max_tokens: int | None = field(default=None, metadata=opt(help="Max new tokens per sample."))

`distill.cli` turns each config dataclass into its Typer command (one option per such field, the
field's default as the option's default), so an option is declared once. Fields without `opt`
metadata are internal (set by code, not by users). This module imports nothing heavy, not even
Typer.

Old spellings listed in `deprecated` (or `was_positional`) keep working for one release, with a
warning on stderr; they are not shown in --help.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distill.errors import UserError

CLI = "cli"  # the metadata key of an option
NESTED = "cli_nested"  # the metadata key of a field holding more options (a dataclass)


@dataclass(frozen=True)
class Opt:
    """How one config field appears on the command line.

    flags: the option's names (`("--output", "-o")`); empty: `--field-name`, and for a bool
        `--field-name/--no-field-name`.
    help: the description `--help` prints.
    type: the command line's type when it differs from the field's (e.g. `list[str]` for a
        comma-separated list the config holds parsed); None: the field's type.
    convert: `(value, flag) -> field value`, applied to a value given on the command line; may
        raise `UserError` naming the flag.
    deprecated: old flag names still accepted (hidden from --help, a warning on stderr).
    was_positional: the value used to be the command's first positional argument (still
        accepted, with a warning).
    """

    flags: tuple[str, ...] = ()
    help: str = ""
    type: Any = None
    convert: Callable[[Any, str], Any] | None = None
    deprecated: tuple[str, ...] = ()
    was_positional: bool = False


def opt(
    *flags: str,
    help: str,
    type: Any = None,
    convert: Callable[[Any, str], Any] | None = None,
    deprecated: tuple[str, ...] = (),
    was_positional: bool = False,
) -> dict[str, Opt]:
    """Field metadata making the field a command-line option (see `Opt`)."""
    return {CLI: Opt(tuple(flags), help, type, convert, tuple(deprecated), was_positional)}


def nested() -> dict[str, bool]:
    """Field metadata for a field holding another options dataclass: its options join the command."""
    return {NESTED: True}


# ---------------------------------------------------------------------------- converters


def comma_list(values: list[str] | str | None, flag: str = "") -> list[str]:
    """Repeated options and comma-separated lists alike: `--x a,b --x c` -> ["a", "b", "c"]."""
    if isinstance(values, str):
        values = [values]
    return [v.strip() for item in values or [] for v in str(item).split(",") if v.strip()]


def comma_list_or_none(values: list[str] | None, flag: str = "") -> list[str] | None:
    """`comma_list`, but nothing given stays None ("the default set")."""
    return comma_list(values) or None


def comma_ints(values: list[str] | str | None, flag: str) -> list[int]:
    """Comma-separated integers; anything else is a `UserError` naming the flag."""
    items = comma_list(values)
    try:
        return [int(x) for x in items]
    except ValueError:
        raise UserError(f"{flag}: expected comma-separated integers, got '{','.join(items)}'") from None


def list_or_none(values: list[str] | None, flag: str = "") -> list[str] | None:
    """A repeatable option: nothing given stays None."""
    return list(values) if values else None


def parse_override(text: str, flag: str) -> tuple[str, Any]:
    """`KEY=VALUE` with VALUE read as JSON when it parses (numbers, true, lists), else a string."""
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise UserError(f"{flag}: expected KEY=VALUE (e.g. learning_rate=3e-3), got '{text}'")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def key_values(values: list[str], flag: str) -> dict[str, Any]:
    """Repeated `KEY=VALUE` options (see `parse_override`) as one dict, later keys winning."""
    return dict(parse_override(v, flag) for v in values)
