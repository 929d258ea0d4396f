"""The monitor's output folder (GAmonitor.py --out): the name of every file and folder a run
writes there, spelled once. The modules that write them import their names from here, so that
knowing the folder (state.py clears it, the page links into it) imports none of them."""
from gacrystal.corrections import CORRECTIONS  # noqa: F401  the reviewer's verdicts; never cleared

FRAMES_CSV = "frames.csv"  # a row per frame (gacrystal.monitoring.tables)
PARTICLES_CSV = "particles.csv"  # a row per candidate region
UNREADABLE_CSV = "unreadable.csv"  # frames given up on
SIZES_CSV = "sizes.csv"  # the size distributions (gacrystal.monitoring.sizes)
STATE_FILE = "monitor.json"  # what identifies the run and its clock, for going on with it
ALARM_JSON = "alarm.json"  # what the alarm promises (gacrystal.monitoring.arl.AlarmFigures)
ADAPTATION_NPZ = "adaptation.npz"  # --adapt: the fitted decision (gacrystal.monitoring.adaptation)
ADAPTATION_JSON = "adaptation.json"  # --adapt: what it was fitted on, for people
TREND = "trend.png"
PAGE = "monitor.html"
OVERLAYS = "overlays"  # a folder of overlay PNGs
LATEST = "latest.png"  # in OVERLAYS: the last frame's overlay, redrawn as frames come (--watch)

# What --overwrite removes: everything a run wrote, but not the reviewer's verdicts.
RUN_FILES = (FRAMES_CSV, PARTICLES_CSV, SIZES_CSV, UNREADABLE_CSV, STATE_FILE, ALARM_JSON,
             ADAPTATION_NPZ, ADAPTATION_JSON, TREND, PAGE)
RUN_FOLDERS = (OVERLAYS,)
