"""The output folder as a whole: monitor.json (what identifies a run and its clock, for going on
with it), and clearing what a run wrote (--overwrite). The names: gacrystal.monitoring.outputs."""
from __future__ import annotations

import json
from pathlib import Path

from gacrystal.monitoring.outputs import ALARM_JSON, RUN_FILES, RUN_FOLDERS, STATE_FILE  # noqa: F401


def save_state(out: Path, state: dict):
    from gacrystal.files import write_text_atomic
    write_text_atomic(out / STATE_FILE, json.dumps(state, indent=2))


def load_state(out: Path) -> dict | None:
    path = out / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def clear_outputs(out: Path):
    """Removes what an earlier run wrote into out (and nothing else)."""
    import shutil
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)
