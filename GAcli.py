"""Settings blocks, command-line flags and one-line errors, shared by every script.

Each runnable script starts with a settings block: plain assignments between the marker lines
`# --- settings` and `# --- end of settings`, one per line, each with a trailing comment that says
what it means. Editing the block and pressing Run (PyCharm) and passing flags (the shell) are the
same thing: every name in the block is also a flag of the same name (`--batch_size 32` or
`--batch-size 32`), booleans get `--name` / `--no-name`, an unknown flag is an error and every
override is printed.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import logging
import sys
from pathlib import Path

BLOCK_START = "# --- settings"
BLOCK_END = "# --- end of settings"


class UserError(Exception):
    """A problem the user can fix (missing data, a bad setting): printed as one line, no traceback."""


@contextlib.contextmanager
def quiet_logger(name: str | None = None, level=logging.ERROR):
    """Raises a library's Python logger (the root logger for None) to `level` for a while."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def read_settings_block(script: str | Path) -> list[tuple[str, object, str]]:
    """Returns (name, default, help) for each assignment in the script's settings block."""
    lines = Path(script).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(BLOCK_START))
    end = next(i for i, line in enumerate(lines) if line.startswith(BLOCK_END))
    settings = []
    for line in lines[start + 1:end]:
        code, _, comment = line.partition("  #")
        if not code.strip() or code.lstrip().startswith("#"):
            continue
        assignment = ast.parse(code).body[0]
        assert isinstance(assignment, ast.Assign), f"not an assignment in settings: {line!r}"
        name = assignment.targets[0].id
        settings.append((name, ast.literal_eval(assignment.value), comment.strip()))
    return settings


def _flag_type(default):
    if isinstance(default, float):
        return float
    if isinstance(default, int):
        return int
    return _optional_str


def _optional_str(text: str):
    """Strings from the command line; 'none' (any case) means None, as in `--weights none`."""
    return None if text.lower() == "none" else text


def parse_settings(script: str | Path, description: str, argv=None, extra=()):
    """Reads the script's settings block and applies command-line overrides.

    Args:
        script: the script's own path (`__file__`).
        description: the first line of `--help`.
        argv: the arguments; `sys.argv[1:]` when None.
        extra: (name, help) pairs of boolean flags that are not settings (such as `--demo`).

    Returns:
        (settings, given): a dict of every setting's value, and the set of names given on the
        command line.
    """
    block = read_settings_block(script)
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Every flag is a name in the settings block at the top of "
        f"{Path(script).name}; edit the block or override it here.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, default, help_text in block:
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        if isinstance(default, bool):
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text, dest=name)
        else:
            parser.add_argument(*flags, type=_flag_type(default), default=default,
                                help=help_text, metavar=name.upper(), dest=name)
    for name, help_text in extra:
        parser.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=help_text,
                            dest=name)
    args = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    defaults = {name: default for name, default, _ in block}
    given = {name for name, value in args.items() if name in defaults and value != defaults[name]}
    for name in sorted(given):
        print(f"override: {name} = {args[name]!r} (settings block: {defaults[name]!r})")
    return args, given


def run_main(main, argv=None) -> int:
    """Runs a script's main(); a UserError or Ctrl-C becomes one line on stderr and an exit status."""
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print, escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        return main(argv) or 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130
