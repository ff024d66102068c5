"""The README and docs/ cannot drift from the code: every `sgan` command they show parses with today's options,
every script and file they name exists, every link between them resolves, the defaults they state are the code's,
and every measured figure outside docs/benchmarks.md is one that page holds."""

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import build_parser
from deploy.export import MIN_INT8_AGREEMENT, MIN_SAME_CLASS
from deploy.publish import DEFAULT_GATE
from sgan.config import DEFAULT_PRESET, OWN_DATA_TIME_BUDGET, PRESETS
from sgan.data import DEFAULT_LABELS
from sgan.data.sources.image_folder import DEFAULT_LONGER_SIDE, trainable_size

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


def inline_commands(page: Path) -> list[str]:
    """`sgan ...` in a page's prose (inline code), where options are named without a whole example."""
    spans = re.findall(r"(?<!`)`(sgan [a-z][^`]*)`(?!`)", re.sub(r"```.*?```", "", page.read_text(), flags=re.S))
    return [span for span in spans if " | " not in span and "..." not in span]



@pytest.mark.parametrize("page, line", [c for c in COMMANDS if re.match(r"(\.venv/bin/)?sgan ", c[1])])
def test_every_sgan_command_shown_parses(page, line):
    build_parser().parse_args(_first_alternative(line))  # argparse exits (the test fails) on an unknown option


@pytest.mark.parametrize("page, span", [(page.name, span) for page in PAGES for span in inline_commands(page)])
def test_every_option_named_in_prose_exists(page, span):
    """`sgan pipeline --warm-start`: the options of the (sub)command it names, without its required arguments."""
    parser, words = build_parser(), shlex.split(span.replace("[", "").replace("]", ""))[1:]
    while words and not words[0].startswith("-"):
        choices = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not choices or words[0] not in choices[0].choices:
            break
        parser = choices[0].choices[words.pop(0)]
    known = {option for action in parser._actions for option in action.option_strings}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"{page}: `{span}`: {parser.prog} has no {word}"


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


def test_every_benchmark_imports():
    """A module moved inside the packages breaks a benchmark only when someone runs it; each one's imports run here
    (not its main), in one process."""
    load = ("import importlib.util, sys\n"
            "sys.path.insert(0, 'benchmarks')  # as when run: a script's folder comes first\n"
            "for path in sys.argv[1:]:\n"
            "    spec = importlib.util.spec_from_file_location('benchmark', path)\n"
            "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n")
    scripts = sorted(str(p) for p in (ROOT / "benchmarks").glob("*.py"))
    result = subprocess.run([sys.executable, "-c", load, *scripts], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-1500:]


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


def _defaults_table() -> dict:
    text = (ROOT / "docs" / "pipeline.md").read_text()
    table = text[text.index("| setting | default |"):].split("\n\n")[0]
    return {row.split(" | ")[0].strip("| "): row.split(" | ")[1].strip(" |") for row in table.splitlines()[2:]}


def test_the_defaults_table_is_the_code():
    import inspect

    from deploy.serve import add_arguments
    from pipeline.flows import DEFAULT_WORKERS, _run_name, sgan_pipeline

    stated = _defaults_table()
    flow = {name: p.default for name, p in inspect.signature(sgan_pipeline.fn).parameters.items()}
    parser = build_parser()
    assert stated["preset"] == f"`{DEFAULT_PRESET}`" == f"`{flow['preset']}`"
    assert parser.parse_args(["train", "--run-dir", "r"]).preset == DEFAULT_PRESET
    assert stated["labels kept on fully labeled (benchmark) data"] == str(DEFAULT_LABELS)
    assert stated["workers"] == f"{DEFAULT_WORKERS} with Horovod, 1 without"
    assert stated["global batch"] == f"{PRESETS[DEFAULT_PRESET].batch_size}, split over the workers"
    assert stated["iterations of `improved`"] == str(PRESETS["improved"].iterations)
    make_iterations = re.search(r"^ITERATIONS \?= (\d+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert stated["iterations of `make run`"] == make_iterations
    assert stated["training time on your own images"] == f"{OWN_DATA_TIME_BUDGET:.0f} s"
    assert f"scaled down to {DEFAULT_LONGER_SIDE} pixels" in stated["image size of an image folder"]
    assert stated["accuracy gate"].startswith(f"{DEFAULT_GATE} on benchmark data")
    assert flow["accuracy_gate"] is None  # unset: the rule above, not a number
    assert stated["tolerance against the model in production"] == f"{flow['tolerance']:g}"
    assert stated["output root"] == f"`{flow['output_root']}`"
    assert stated["run folder"] == "`OUTPUT_ROOT/runs/<preset>-<hash>`"
    assert re.fullmatch(r"improved-[0-9a-f]{12}", _run_name({"seed": 0}, ["--preset", "improved"], 100))
    models = parser.parse_args(["models", "list"]).models_root
    assert stated["models root (`sgan models`)"] == f"`{models}`" == f"`{flow['output_root']}/models`"
    serve = argparse.ArgumentParser()
    add_arguments(serve)
    defaults = serve.parse_args(["m.onnx"])
    assert stated["`sgan serve`"] == f"`{defaults.host}`, port {defaults.port}, {defaults.processes} process"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_defaults_stated_in_prose_agree(page):
    text = page.read_text()
    for batch in re.findall(r"global batch of (\d+)", text):
        assert int(batch) == PRESETS[DEFAULT_PRESET].batch_size, f"{page.name}: global batch of {batch}"
    for name in re.findall(r"runs/<([^>]+)>", text):
        assert name == "preset", f"{page.name}: runs/<{name}>"
    for minutes in re.findall(r"trains? for\s+about (\d+) minutes", text):
        assert int(minutes) * 60 == OWN_DATA_TIME_BUDGET, f"{page.name}: about {minutes} minutes"


# Figures that read as measurements: accuracies to a hundredth of a point, speed-ups, rates, latencies.
MEASURED = re.compile(r"\d[\d,]*\.\d+%|\d[\d,.]*x (?:faster|slower|smaller)|\d[\d,.]*k? (?:requests|images|iterations|"
                      r"calls)/s|\d[\d,.]* (?:ms|us)\b")


# The agreement an export requires of the ONNX and INT8 models: settings the docs state, not results.
THRESHOLDS = {f"{MIN_SAME_CLASS:.2%}", f"{MIN_INT8_AGREEMENT:.1%}"}


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "benchmarks.md"], ids=lambda p: p.name)
def test_figures_outside_benchmarks_are_the_benchmarks(page):
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    missing = [figure for figure in MEASURED.findall(page.read_text()) if figure not in THRESHOLDS and figure not in benchmarks]
    assert not missing, f"{page.name} quotes figures docs/benchmarks.md does not hold: {missing}"


def test_the_docs_describe_the_product_not_its_making():
    words = re.compile(r"/work/|/tmp/|/home/(?!sgan/)|\bissues?\b|\btargets?:|(?<!ssh )\bsession\b|ENVIRONMENT\.md|scratch script|"
                       r"[Oo]ur reading|not kept|was not attempted|earlier commits?", re.I)
    found = [f"{page.name}: {m.group(0)}" for page in PAGES for m in words.finditer(page.read_text())]
    assert not found
