"""The monitor's tables (gacrystal/monitoring/tables.py): a partial last line is cut and rows
can be dropped."""
from gacrystal.monitoring.tables import iter_rows, keep_rows


def test_a_partial_last_line_is_cut_and_rows_can_be_dropped(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("frame,n\na,1\nb,2\nc,")
    assert [r["frame"] for r in iter_rows(path)] == ["a", "b"]
    assert path.read_text() == "frame,n\na,1\nb,2\n"
    keep_rows(path, lambda row: row["frame"] != "a", ["frame", "n"])
    assert path.read_text() == "frame,n\nb,2\n"
