"""Writing files safely (gacrystal/files.py): the one rule of every CSV table, whole
(write_csv) or grown a row at a time (append_csv)."""
import csv
import os

import pytest

from gacrystal.files import CSV_TEXT, append_csv, csv_cells, write_csv

ODD_NAME = os.fsdecode(b"odd_\xff_name.png")  # a file name that is not valid UTF-8


def read_back(path):
    with open(path, **CSV_TEXT) as f:
        return list(csv.DictReader(f))


def test_both_writers_keep_ten_significant_digits_and_odd_file_names(tmp_path):
    try:
        (tmp_path / ODD_NAME).write_bytes(b"")  # where the file system takes such names
        odd_file = str(tmp_path / ODD_NAME)
    except OSError:
        odd_file = None
    rows = [{"file": ODD_NAME, "elapsed_s": 2_592_000.125, "p_pg": 0.123456789, "none": None,
             "count": 3}]
    if odd_file:
        rows.append({"file": odd_file, "elapsed_s": 0.0, "p_pg": 1e-7, "none": None, "count": 0})
    columns = list(rows[0])
    write_csv(rows, tmp_path / "whole.csv", columns)
    append_csv(tmp_path / "grown.csv", rows[:1], columns)
    append_csv(tmp_path / "grown.csv", rows[1:], columns)  # a second append: no second header
    whole, grown = read_back(tmp_path / "whole.csv"), read_back(tmp_path / "grown.csv")
    assert whole == grown == [{k: str(v) for k, v in csv_cells(r, columns).items()} for r in rows]
    first = whole[0]
    assert first == {"file": ODD_NAME, "elapsed_s": "2592000.125", "p_pg": "0.123456789",
                     "none": "", "count": "3"}  # more than 6 significant digits, exact
    assert float(first["p_pg"]) == 0.123456789
    assert os.fsencode(first["file"]) == b"odd_\xff_name.png"
    if odd_file:
        assert os.path.isfile(whole[1]["file"]) and whole[1]["p_pg"] == "1e-07"
    assert (tmp_path / "whole.csv").read_bytes().count(b"\r\n") == len(rows) + 1
    assert b"\r" not in (tmp_path / "grown.csv").read_bytes()


def test_a_missing_column_is_an_error_not_an_empty_cell(tmp_path):
    with pytest.raises(KeyError):
        write_csv([{"a": 1}], tmp_path / "t.csv", ["a", "b"])
    assert not (tmp_path / "t.csv").exists()
