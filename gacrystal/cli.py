"""Settings blocks, command-line flags, where each value came from, progress bars and exit codes.

Each runnable script starts with a settings block: plain assignments between the marker lines
`# --- settings` and `# --- end of settings`, one per line, each with a trailing comment that says
what it means. Editing the block and pressing Run (PyCharm) and passing flags (the shell) are the
same thing: every name in the block is also a flag of the same name (`--batch_size 32` or
`--batch-size 32`), booleans get `--name` / `--no-name`, an unknown flag is an error and every
override is printed.

Precedence, lowest first: the settings block, then any recipes the script layers on top (GAmain's
`--demo` and `--preset`), then the command line. A flag typed on the command line always wins,
even when its value equals the block's.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import logging
import os
import sys
from pathlib import Path

from gacrystal.errors import UserError

BLOCK_START = "# --- settings"
BLOCK_END = "# --- end of settings"
BLOCK = "settings block"
COMMAND_LINE = "command line"


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


def progress_bar(total: int, desc: str, unit: str = "img", enabled: bool = True):
    """A tqdm bar on stderr: redrawn often in a terminal, every few seconds in a log file."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled,
                mininterval=0.1 if sys.stderr.isatty() else 5.0)


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


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviations (`--epoch` is not `--epochs`), whose errors are one line
    first, with the closest flag's name, and the usage left to `--help`."""

    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message):
        flags = [flag for action in self._actions for flag in action.option_strings]
        unknown = message.partition("unrecognized arguments:")[2]
        for word in (word for word in unknown.split() if word.startswith("-")):
            close = difflib.get_close_matches(word.split("=")[0], flags, n=1, cutoff=0.6)
            if close:
                message += f" (did you mean {close[0]}?)"
                break
        self.exit(2, f"error: {message}\nEvery flag: python {self.prog} --help\n")


def parse_settings(script: str | Path, description: str, argv=None,
                   renamed: dict[str, str] | None = None):
    """Reads the script's settings block and applies command-line overrides.

    Args:
        script: the script's own path (`__file__`).
        description: the first line of `--help`.
        argv: the arguments; `sys.argv[1:]` when None.
        renamed: {old name: setting} for flags that were renamed; the old flag still works.

    Returns:
        (settings, given): a dict of every setting's value, and the set of names typed on the
        command line (whatever their values).
    """
    block = read_settings_block(script)
    parser = _Parser(
        prog=Path(script).name, description=description,
        epilog="Every flag is a name in the settings block at the top of "
        f"{Path(script).name}; edit the block or override it here.")
    old_names = {new: old for old, new in (renamed or {}).items()}
    for name, default, help_text in block:
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        flags += [f"--{old_names[name]}"] if name in old_names else []
        # SUPPRESS: a flag that was not typed leaves no entry, so `given` is exactly what was typed.
        common = dict(default=argparse.SUPPRESS, dest=name,
                      help=f"{help_text} (default: {default!r})")
        if isinstance(default, bool):
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        else:
            parser.add_argument(*flags, type=_flag_type(default), metavar=name.upper(), **common)
    typed = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    defaults = {name: default for name, default, _ in block}
    for name in sorted(typed):
        print(f"override: {name} = {typed[name]!r} (settings block: {defaults[name]!r})")
    return {**defaults, **typed}, set(typed)


def layer_recipes(settings: dict, given: set, recipes: list[tuple[str, dict]],
                  ) -> tuple[dict, dict[str, str]]:
    """Lays recipes (such as --demo, then a preset) over the settings block, in order, never over
    a value typed on the command line; prints each value a recipe set.

    Returns:
        (settings, source): the values, and for each setting where it came from ("settings
        block", a recipe's name, or "command line").
    """
    settings = dict(settings)
    source = {name: COMMAND_LINE if name in given else BLOCK for name in settings}
    for recipe_name, recipe in recipes:
        for name, value in recipe.items():
            if name not in given:
                print(f"{recipe_name}: {name} = {value!r}")
                settings[name], source[name] = value, recipe_name
    return settings, source


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


def exit_script(code: int):
    """A script's exit. After Ctrl-C, at once (os._exit): TensorFlow's threads may still be
    running the interrupted step, and the interpreter's teardown under them can crash (a
    SIGSEGV instead of status 130, seen once in the Ctrl-C test). Every file is written by then:
    the backup is atomic, the streams are flushed here."""
    if code != 130:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
