"""The monitor's tables (gacrystal/monitoring/tables.py): a partial last line is cut, orphan rows
dropped, and a table written with other columns (an older version) refused, not appended to."""
import pytest

from gacrystal.errors import UserError
from gacrystal.monitoring import CusumRule, FrameClock, Monitor
from gacrystal.monitoring.records import FRAME_COLUMNS, PARTICLE_COLUMNS
from gacrystal.monitoring.tables import check_columns, iter_rows, keep_rows
from probe import BrightnessClassifier


def test_a_partial_last_line_is_cut_and_rows_can_be_dropped(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("frame,n\na,1\nb,2\nc,")
    assert [r["frame"] for r in iter_rows(path)] == ["a", "b"]
    assert path.read_text() == "frame,n\na,1\nb,2\n"
    keep_rows(path, lambda row: row["frame"] != "a", ["frame", "n"])
    assert path.read_text() == "frame,n\nb,2\n"


def test_a_table_with_other_columns_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    older = [c for c in FRAME_COLUMNS if c != "unknown"]  # as a version before UNKNOWN wrote it
    text = ",".join(older) + "\n" + ",".join("1" for _ in older) + "\n"
    (out / "frames.csv").write_text(text)
    with pytest.raises(UserError) as error:
        Monitor(BrightnessClassifier(), out, FrameClock("auto"), CusumRule()).resume()
    message = str(error.value)
    assert str(out / "frames.csv") in message and "missing unknown" in message
    assert "--overwrite" in message and "another --out" in message and "\n" not in message
    assert (out / "frames.csv").read_text() == text and not (out / "particles.csv").exists()
    (out / "particles.csv").write_text(",".join(PARTICLE_COLUMNS + ["rank"]) + "\n")
    with pytest.raises(UserError, match="extra rank"):
        check_columns(out / "particles.csv", PARTICLE_COLUMNS)
    (out / "particles.csv").write_text(",".join(reversed(PARTICLE_COLUMNS)) + "\n")
    with pytest.raises(UserError, match="in another order"):
        check_columns(out / "particles.csv", PARTICLE_COLUMNS)
    check_columns(out / "none.csv", PARTICLE_COLUMNS)  # no table yet: nothing to refuse
