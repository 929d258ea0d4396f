"""pyproject.toml: the metadata `pip install -e .` builds from, without deprecation warnings."""
import re

import pytest

from conftest import ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; 3.10 skips this file


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_the_license_is_an_spdx_string_with_its_file():
    """A TOML table (license = {text = "MIT"}) makes setuptools warn on every install that it is
    deprecated (removed in 2027); an SPDX string and license-files need setuptools 77."""
    project = pyproject()["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] and all((ROOT / f).is_file() for f in project["license-files"])
    setuptools = [r for r in pyproject()["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools[0].replace(" ", ""))
    assert minimum and int(minimum.group(1)) >= 77
