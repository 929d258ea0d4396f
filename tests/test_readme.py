"""The README's quick start and CI must not drift apart."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = next(line for line in ci_lines if "pytest" in line)
    readme = (ROOT / "README.md").read_text()
    assert test_command in readme.splitlines()
