"""The README and docs/ must stay true: the quick start and CI agree, the README stays short,
every link leads somewhere, no history or developer paths, and every command names real flags."""
import ast
import re
from pathlib import Path

import pytest

from gacrystal.cli import read_settings_block

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted([README, *(ROOT / "docs").glob("*.md")])


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = next(line for line in ci_lines if "pytest" in line)
    readme = (ROOT / "README.md").read_text()
    assert test_command in readme.splitlines()


def test_readme_is_short():
    text = README.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= 250, f"README.md has {lines} lines; move reference text to docs/"
    assert len(text) <= 15_000, f"README.md has {len(text)} characters; move text to docs/"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_files(doc):
    text = doc.read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(text)
               if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    missing = [t for t in targets if not (doc.parent / t.split("#")[0]).exists()]
    assert not missing, f"{doc.name}: links to files that do not exist: {missing}"


ISSUE = re.compile(r"\bissues?\s+#?\d+", re.IGNORECASE)
# A whole word of 7-40 hex digits with at least one digit and one letter, not part of a longer
# token such as a DOI (10.1021/acs.oprd.1c00136) or a path.
HASH = re.compile(r"(?<![\w./-])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w/-]|\.\w)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_history_or_developer_paths(doc):
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{doc.name}: a path outside the repository"
    assert not ISSUE.findall(text), f"{doc.name}: issue numbers {ISSUE.findall(text)}"
    assert not HASH.findall(text), f"{doc.name}: commit hashes {HASH.findall(text)}"


def test_the_history_patterns_catch_what_they_should():
    assert ISSUE.search("issue 23") and ISSUE.search("Issue #7") and ISSUE.search("issues 23")
    assert HASH.search("before 19382ee") and HASH.search("commit 1caadaf.")
    assert HASH.search("(`1caadaf`)")
    for word in ("defaced", "facade", "1234567", "deadbeef", "an issue with 3 frames",
                 "10.1021/acs.oprd.1c00136", "runs/1c00136a/model.keras"):
        assert not HASH.search(word) and not ISSUE.search(word), word


def accepted_flags(script: Path) -> set[str]:
    """The flags the script accepts, as gacrystal.cli.parse_settings makes them, without
    importing the script (nor TensorFlow): its settings block, plus any renamed flags that its
    parse_settings call passes, plus argparse's --help."""
    block = read_settings_block(script)
    names = [name for name, _, _ in block]
    booleans = {name for name, default, _ in block if isinstance(default, bool)}
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "parse_settings":
            for keyword in node.keywords:
                if keyword.arg == "renamed":
                    for old, new in ast.literal_eval(keyword.value).items():
                        names.append(old)
                        if new in booleans:
                            booleans.add(old)
    flags = {"--help", "-h"}
    for name in names:
        spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
        flags |= spellings
        if name in booleans:  # argparse.BooleanOptionalAction adds --no-NAME for each spelling
            flags |= {f"--no-{flag[2:]}" for flag in spellings}
    return flags


def bash_commands(doc: Path) -> list[str]:
    """The logical lines (continuations joined) of the ```bash blocks in a markdown file."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
        commands += block.replace("\\\n", " ").splitlines()
    return commands


SCRIPT_COMMAND = re.compile(r"(?:^|[\s'\"(;&|])(?:\S*/)?python3?\s+(GA\w*\.py)\b([^;&|#'\"]*)")


def script_commands() -> list[tuple[str, str, str]]:
    """(doc, script, arguments) for every `python GAxxx.py ...` in the bash blocks."""
    found = []
    for doc in DOCS:
        for line in bash_commands(doc):
            for script, arguments in SCRIPT_COMMAND.findall(line):
                found.append((doc.relative_to(ROOT).as_posix(), script, arguments))
    return found


def test_the_docs_have_script_commands_to_check():
    scripts = {script for _, script, _ in script_commands()}
    assert {"GAmain.py", "GAsplit.py", "GAinfer.py", "GAmonitor.py"} <= scripts


@pytest.mark.parametrize("doc, script, arguments", script_commands(),
                         ids=[f"{doc}-{script}" for doc, script, _ in script_commands()])
def test_commands_name_real_scripts_and_flags(doc, script, arguments):
    path = ROOT / script
    assert path.is_file(), f"{doc}: {script} does not exist"
    flags = {word.split("=")[0] for word in arguments.split() if word.startswith("-")}
    unknown = sorted(flags - accepted_flags(path))
    assert not unknown, f"{doc}: {script} does not accept {unknown}"
