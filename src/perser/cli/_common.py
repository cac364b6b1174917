"""Pieces shared by the ``perser`` command groups."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator, List, Optional

import typer.core
from rich.console import Console

__all__ = ["report_warnings", "parse_key_value", "parse_options", "readable_help", "ReadableGroup", "OPTION_HELP"]


@contextlib.contextmanager
def report_warnings(console: Console) -> Iterator[None]:
    """Print perser's counted warnings raised in the block as one yellow line each on ``console``.

    Every :class:`perser.errors.PerserWarning` is printed (none is deduplicated away);
    any other warning is passed on to :func:`warnings.showwarning` in Python's format.
    Both happen when the block ends, also when it raises.
    """
    from perser.errors import PerserWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PerserWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, PerserWarning):
                    console.print(f"[yellow]warning:[/yellow] {w.message}", highlight=False, soft_wrap=True)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


OPTION_HELP = ("A loader option KEY=VALUE (repeatable; VALUE read as a YAML scalar), e.g. modality=face for "
               "CREMA-D, secondary=true for MSP-Podcast; see the format's loader for its options.")


def parse_key_value(item: str, flag: str = "--option") -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)`` with VALUE read as YAML (``true``, ``10``, ``[16]``,
    ``null``; text YAML cannot read stays a string; nothing after ``=`` is ``None``); a
    missing ``=`` or an empty key raises :class:`~perser.errors.ConfigError` naming ``flag``."""
    import yaml

    from perser.errors import ConfigError

    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{flag} {item!r} is not KEY=VALUE")
    try:
        return key, (yaml.safe_load(text) if text.strip() else None)
    except yaml.YAMLError:
        return key, text


def parse_options(items: Optional[List[str]]) -> dict[str, Any]:
    """``["modality=face", "max_first_click_s=10"]`` -> ``{"modality": "face", "max_first_click_s": 10}``.

    Each value is parsed as a YAML scalar (see :func:`parse_key_value`); a missing ``=``, an
    empty key, a repeated key or a non-scalar value raise :class:`~perser.errors.ConfigError`
    naming the item.
    """
    from perser.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items or []:
        key, value = parse_key_value(item)
        if key in out:
            raise ConfigError(f"--option {key} is given twice")
        if isinstance(value, (dict, list)):
            raise ConfigError(f"--option {item!r}: the value must be a single value, not a YAML {type(value).__name__}")
        out[key] = value
    return out


#: placeholders shown after an option in ``--help``, by the option's Python type
_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH"}


def readable_help(command: Any) -> Any:
    """Make a built command's ``--help`` read like a well-kept command line; returns ``command``.

    Every option gets a plain placeholder (``TEXT``, ``INTEGER``, ``NUMBER``, ``PATH``;
    none for a flag) instead of the Python type name (``<str>``, ``<list[str]>``, ``<bool>``),
    an argument its name in capitals, and help texts are shown as written: a
    ``[default: ...]`` in a help text is text, not console markup that would vanish and
    leave " ." behind. Sub-commands are treated alike; a second call changes nothing.
    """
    from rich.markup import escape

    if getattr(command, "_perser_readable", False):
        return command
    command._perser_readable = True
    for p in getattr(command, "params", []):
        if getattr(p, "help", None):
            p.help = escape(p.help)
        if getattr(p, "is_bool_flag", False) and p.secondary_opts and p.show_default is True:
            shown = p.opts[0] if p.default else p.secondary_opts[0]  # "[default: --progress]", not "progress"
            p.help = f"{p.help or ''} \\[default: {shown}]".strip()
            p.show_default = False
        if p.metavar is None:
            if getattr(p, "is_flag", False):
                p.metavar = ""
            elif getattr(p, "param_type_name", "") == "argument" or type(p).__name__.endswith("Argument"):
                p.metavar = p.name.upper()
                p.display_type_rich = lambda ctx=None: None  # the name says it: no "<path>" beside it
            else:
                desc = getattr(p, "type_descriptor", None)
                if desc is None or not getattr(desc, "is_choice", False):
                    ann = getattr(desc, "annotation", None)
                    args = getattr(ann, "__args__", None)
                    if args:  # list[str] -> str
                        ann = args[0]
                    p.metavar = _METAVARS.get(getattr(ann, "__name__", ""), "VALUE")
    for attr in ("help", "epilog"):
        if getattr(command, attr, None):
            setattr(command, attr, escape(getattr(command, attr)))
    make_help = getattr(command, "get_help_option", None)
    if make_help is not None:
        def get_help_option(ctx):
            opt = make_help(ctx)
            if opt is not None and opt.metavar is None:
                opt.metavar = ""  # --help is a flag: no "<bool>" beside it
            return opt

        command.get_help_option = get_help_option
    for sub in (getattr(command, "commands", None) or {}).values():
        readable_help(sub)
    return command


class ReadableGroup(typer.core.TyperGroup):
    """A command group whose commands (and itself) render ``--help`` through :func:`readable_help`."""

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        return readable_help(command) if command is not None else None

    def format_help(self, ctx, formatter):
        readable_help(self)
        return super().format_help(ctx, formatter)
