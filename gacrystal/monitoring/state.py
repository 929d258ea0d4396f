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


def run_identity(out: Path, frames: Path, model: Path, time_source: str, times: str,
                 overwrite: bool) -> dict:
    """What identifies a monitoring run (its frames and model), once OUT is checked: it must be
    new, hold an earlier run on the same frames and model timed the same way (which goes on), or
    be cleared with overwrite."""
    from gacrystal.errors import UserError
    identity = {"frames": str(frames.resolve()), "weights": str(model.resolve())}
    state = load_state(out)
    if not state or overwrite:
        return identity
    differs = [k for k in identity if state.get(k) != identity[k]]
    if differs:
        raise UserError(f"{out} holds a run on other {' and '.join(differs)} "
                        f"({', '.join(str(state.get(k)) for k in differs)}); choose another "
                        "--out, or pass --overwrite to replace it")
    timed_by = state.get("time_source")
    if timed_by and time_source != "auto" and time_source != timed_by:
        raise UserError(f"the run in {out} takes its times from {timed_by}, not {time_source}; "
                        "run again without --time_source/--times/--interval to go on with it, "
                        "or pass --overwrite to start again")
    if timed_by == "times" and not times:
        raise UserError(f"the run in {out} takes its times from a --times CSV; pass it "
                        f"again (--times {state['settings'].get('times', 'FILE.csv')})")
    return identity
