"""The output folder as a whole: monitor.json (what identifies a run and its clock, for going on
with it), alarm.json's name, and clearing what a run wrote (--overwrite)."""
from __future__ import annotations

import json
from pathlib import Path

from gacrystal.monitoring.overlay import OVERLAYS
from gacrystal.monitoring.page import PAGE
from gacrystal.monitoring.tables import FRAMES_CSV, PARTICLES_CSV, SIZES_CSV, UNREADABLE_CSV
from gacrystal.monitoring.trend import TREND

STATE_FILE = "monitor.json"
ALARM_JSON = "alarm.json"  # what the alarm promises (gacrystal.monitoring.arl.AlarmFigures)


def save_state(out: Path, state: dict):
    from gacrystal.files import write_text_atomic
    write_text_atomic(out / STATE_FILE, json.dumps(state, indent=2))


def load_state(out: Path) -> dict | None:
    path = out / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def clear_outputs(out: Path):
    """Removes what an earlier run wrote into out (and nothing else)."""
    import shutil
    for name in (FRAMES_CSV, PARTICLES_CSV, SIZES_CSV, UNREADABLE_CSV, STATE_FILE, ALARM_JSON,
                 TREND, PAGE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / OVERLAYS, ignore_errors=True)
