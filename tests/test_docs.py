"""The README and docs/ cannot drift from the code: every `sgan` command they show parses with today's options,
every script and file they name exists, every link between them resolves, and the defaults they state hold."""

import re
import shlex
from pathlib import Path

import pytest

from cli.main import build_parser
from sgan.config import DEFAULT_PRESET
from sgan.data.sources.image_folder import trainable_size

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_lines(page: Path) -> list[str]:
    """The commands in a page's ```bash blocks, continuation lines joined and comments dropped."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


COMMANDS = [(page.name, line) for page in PAGES for line in shell_lines(page)]


@pytest.mark.parametrize("page, line", [c for c in COMMANDS if re.match(r"(\.venv/bin/)?sgan ", c[1])])
def test_every_sgan_command_shown_parses(page, line):
    build_parser().parse_args(_first_alternative(line))  # argparse exits (the test fails) on an unknown option


def _first_alternative(line: str) -> list[str]:
    """`sgan train --run-dir R [--preset improved|seed] ... && sgan export ...` -> the first command's words, with
    optional parts kept, the first of each `a|b`, and 1 for N."""
    line = line.split("&&")[0].replace("[", "").replace("]", "")
    words = [re.sub(r"\|.*", "", w) for w in shlex.split(line)]
    return ["1" if w == "N" else w for w in words[1:] if w != "..."]  # N: a placeholder count


@pytest.mark.parametrize("page, line", [c for c in COMMANDS if "benchmarks/" in c[1] or "scripts/" in c[1]])
def test_every_script_shown_exists(page, line):
    for path in re.findall(r"((?:benchmarks|scripts)/[\w./-]+\.(?:py|sh))", line):
        assert (ROOT / path).is_file(), f"{page}: {path}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_and_named_test_resolves(page):
    text = page.read_text()
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (page.parent / target).exists(), f"{page.name}: link to {target}"
    for path, test in re.findall(r"`(tests/\w+\.py)::(\w+)`", text):
        assert re.search(rf"def {test}\(", (ROOT / path).read_text()), f"{page.name}: {path}::{test}"


def test_the_defaults_the_readme_states():
    readme = (ROOT / "README.md").read_text()
    assert DEFAULT_PRESET == "improved" and "the `improved` preset; rerun the same command to resume" in readme
    assert build_parser().parse_args(["train", "--run-dir", "r"]).preset == DEFAULT_PRESET
    assert "brought to a longer side of 32 px" in readme and trainable_size(480, 640) == (24, 32)
    assert len(readme.splitlines()) <= 160
