"""The corrections loop both scripts share (gacrystal/corrections.py): one vocabulary of verdicts,
the class each gives, and older GAinfer.py files read as the same verdicts."""
import pytest

from gacrystal.corrections import read_verdicts, training_class, verdict_of
from gacrystal.errors import UserError


def test_each_verdict_gives_the_class_an_image_trains_with():
    assert training_class("PG", 0.9, "right") == "PG" and training_class("PG", 0.9, "") == "PG"
    assert training_class("PG", 0.9, "wrong") == "CEX"
    assert training_class("CEX", 0.1, "wrong") == "PG"
    assert training_class("PG", 0.9, "neither") is None
    assert training_class("PG", 0.9, "CEX") == "CEX"
    assert training_class("UNKNOWN", 0.9, "CEX") == "CEX"
    assert training_class("UNKNOWN", 0.7, "") is None  # no class unless a verdict gives one
    assert training_class("UNKNOWN", 0.7, "wrong") == "PG"
    assert training_class("ERROR", None, "") is None
    assert training_class("ERROR", None, "wrong") is None


def test_verdicts_are_read_in_any_case_and_nothing_else_is():
    assert [verdict_of(w) for w in ("", " Right ", "WRONG", "neither", "pg", "Cex")] == [
        "", "right", "wrong", "neither", "PG", "CEX"]
    with pytest.raises(ValueError):
        verdict_of("maybe")


def test_an_older_gainfer_file_reads_as_the_same_verdicts(tmp_path):
    """Its `corrected` column held the class, prefilled with the prediction; emptied: left out."""
    path = tmp_path / "corrections.csv"
    path.write_text("file,predicted,p_pg,corrected\r\na.png,CEX,0.1,CEX\r\nb.png,CEX,0.2,PG\r\n"
                    "c.png,PG,0.9,\r\nd.png,UNKNOWN,0.8,cex\r\n")
    rows = read_verdicts(path, "labelled files")
    assert [verdict for _, verdict in rows] == ["right", "PG", "neither", "CEX"]
    assert [training_class(row["predicted"], float(row["p_pg"]), verdict)
            for row, verdict in rows] == ["CEX", "PG", None, "CEX"]  # what the file meant
    path.write_text("file,predicted,p_pg,corrected\na.png,CEX,0.1,maybe\n")
    with pytest.raises(UserError, match="line 2: corrected must be CEX, PG or empty"):
        read_verdicts(path, "labelled files")


def test_a_file_of_neither_kind_names_the_columns_it_needs(tmp_path):
    path = tmp_path / "corrections.csv"
    path.write_text("name,label\na.png,CEX\n")
    with pytest.raises(UserError, match="needs the columns file and verdict. Received: label"):
        read_verdicts(path, "labelled files")
