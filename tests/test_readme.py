"""README.md is the map and docs/ the manual: what they show runs, parses and is true.

* The Quickstart is the two lines CI runs.
* Every ```toml block parses (as a study file, or as a snippet of one).
* Each page runs top to bottom in a fresh temporary folder: its ```python blocks run, and
  the ``nas-study`` commands of its shell blocks run on a small budget, each asserting exit
  status 0. A shell line that cannot run here is in :data:`NOT_RUN`, with its reason.
* "Follow one trial" names the modules a real run passes through, in order.
* Every benchmark module is listed, by the command that runs it, in docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

#: Appended to the commands that train, so each page runs in seconds; a later option wins.
SMALL_BUDGET = {
    "run": ["--n-trials", "2", "--epochs", "1"],
    "worker": ["--n-trials", "1", "--epochs", "1"],
    "launch": ["--n-trials", "2", "--epochs", "1"],
    "oneshot": ["--candidates", "1", "--epochs", "1"],
}

_GPU = "needs a CUDA GPU"
_FLEET = "needs a PostgreSQL server or a second machine"
_INSTALL = "installs packages (network, minutes); CI installs the same way before this test"
_SERVER = "a server that runs until it is stopped"

#: Every shell command of README.md and docs/ that this test does not run, and why (as
#: written there; compared word by word).
_NOT_RUN: dict[str, str] = {
    'pip install -e ".[test]"': _INSTALL,
    "python -m pytest": "the whole suite, which CI runs; this test is part of it",
    "python -m pytest tests/test_readme.py": "this very test",
    "python3 -m venv .venv": "makes a virtual environment (minutes); the test runs in one",
    ". .venv/bin/activate": "activates the environment made by the line before",
    "pip install .": _INSTALL,
    "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu": _INSTALL,
    'pip install ".[postgres,grpc]"': _INSTALL,
    "pip wheel --no-deps -w dist .": "builds a wheel (minutes with build isolation)",
    'pip install "./nas_study-0.1.0-py3-none-any.whl[postgres,grpc]"': _INSTALL,
    'pip install --index-url https://YOUR-INDEX/simple "nas-study[postgres,grpc]"': (
        "names the reader's own package index"
    ),
    "createdb -h db-host -U postgres nas": _FLEET,
    "NAS_STUDY_STORAGE=postgresql://nas:PASSWORD@db-host:5432/nas nas-study serve-storage "
    "--host 0.0.0.0 --port 13000": f"{_FLEET}; {_SERVER}",
    "export NAS_STUDY_STORAGE=postgresql://nas:PASSWORD@db-host:5432/nas": _FLEET,
    "nas-study worker fashion-cnn --device cuda": f"{_GPU}; downloads Fashion-MNIST",
    "nas-study launch fashion-cnn --workers 4 --gpus 0,1,2,3": f"{_GPU}s; downloads data",
    "nas-study launch fashion-mlp --gpus 0,1 --workers-per-gpu 4": f"{_GPU}s; downloads data",
    "nas-study oneshot cifar10-cell --storage postgresql://... --candidates 8": (
        f"{_FLEET}; downloads CIFAR-10"
    ),
    "nas-study worker cifar10-cell --storage postgresql://...": f"{_FLEET}; downloads CIFAR-10",
    'export NAS_STUDY_DASHBOARD_TOKEN="$(python -c "import secrets; '
    'print(secrets.token_urlsafe())")"': "only sets up the dashboard line below",
    "nas-study dashboard --host 0.0.0.0 --read-only": _SERVER,
}
NOT_RUN = {" ".join(shlex.split(command)): why for command, why in _NOT_RUN.items()}


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    lang: str
    text: str
    line: int

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^( *)```([\w-]*)\n(.*?)^\1```", re.M | re.S)


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for m in _FENCE.finditer(text):
        indent = len(m.group(1))
        body = "".join(line[indent:] for line in m.group(3).splitlines(keepends=True))
        found.append(Block(page, m.group(2), body, text.count("\n", 0, m.start()) + 1))
    return found


def all_blocks(*langs: str) -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.lang in langs]


def shell_commands(block: Block) -> Iterator[list[str]]:
    """Each command of a shell block as its words: continuation lines joined, comments
    dropped, and a line's ``a && b`` split into its commands."""
    text = block.text.replace("\\\n", " ")
    for line in text.splitlines():
        command: list[str] = []
        for token in [*shlex.split(line, comments=True), "&&"]:
            if token != "&&":
                command.append(token)
            elif command:
                yield command
                command = []


def _key(words: list[str]) -> str:
    """How a command is named in :data:`NOT_RUN` and in messages: its words, unquoted."""
    return " ".join(words)


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


# -------------------------------------------------------------------------- Quickstart


def _quickstart_lines() -> list[str]:
    section = _section(README.read_text(), "## Quickstart")
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quickstart_is_two_command_lines() -> None:
    first, second = _quickstart_lines()
    assert first == "pip install . && nas-study run digits-mlp"
    assert "pytest" in second and second.startswith("pip install")


def test_ci_runs_the_readme_test_line() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m 1 -E '^pip install .*pytest' README.md" in ci
    matching = [
        ln for ln in README.read_text().splitlines() if re.match(r"^pip install .*pytest", ln)
    ]
    assert matching[0] == _quickstart_lines()[1]


def test_readme_is_a_map_of_at_most_250_lines() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == ["Quickstart", "Commands", "Follow one trial", "Layout", "Headline figures"]


def test_the_commands_table_lists_every_command() -> None:
    from studies.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = set(sub.choices)  # type: ignore[arg-type]
    table = _section(README.read_text(), "## Commands")
    listed = set(re.findall(r"^\| `nas-study ([a-z-]+)", table, re.M))
    assert listed == commands


def test_the_layout_names_every_package_folder() -> None:
    table = _section(README.read_text(), "## Layout")
    listed = set(re.findall(r"^\| `([\w./]+/)` \|", table, re.M))
    folders = {"nas_objectives/", "storage/", "tests/", "benchmarks/", "docs/", ".ci/"}
    # Every sub-package of studies/ and nas_objectives/ has its line; storage/ has one line
    # for the whole package, its wings included.
    for package in ("studies", "nas_objectives"):
        folders |= {
            f"{p.parent.relative_to(ROOT).as_posix()}/"
            for p in (ROOT / package).glob("*/__init__.py")
        }
    assert folders <= listed, folders - listed
    assert all((ROOT / name).is_dir() for name in listed), listed


def test_each_headline_figure_links_to_where_it_is_measured() -> None:
    figures = re.findall(r"^- (.+)$", _section(README.read_text(), "## Headline figures"), re.M)
    assert figures
    for figure in figures:
        assert re.search(r"\]\(docs/benchmarks\.md#[\w-]+\)", figure), figure


# -------------------------------------------------------------------------------- links


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", page.read_text())
    local = [t for t in links if not re.match(r"[a-z]+:", t)]
    assert local, "a page of the map or the manual links to others"
    for target in local:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: {target}"
        if anchor and dest.suffix == ".md":
            slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
            assert anchor in slugs, f"{page.name}: {target}"


# --------------------------------------------------------------------------------- TOML

_STUB = 'name = "x"\ndataset = "digits"\n'


def _parse_toml_block(block: Block) -> Any:
    from studies import parse_spec

    text = block.text
    top = tomllib.loads(text)
    if "name" in top:  # a whole study file
        return parse_spec(text, str(block))
    if "dataset" in top:
        return parse_spec('name = "x"\n' + text, str(block))
    return parse_spec(_STUB + text, str(block))


@pytest.mark.parametrize("block", all_blocks("toml"), ids=str)
def test_every_toml_block_is_a_valid_study_file_or_snippet(block: Block) -> None:
    spec = _parse_toml_block(block)
    assert spec.name


def _toml(page: str, starts: str) -> Block:
    found = [b for b in blocks(DOCS / page) if b.lang == "toml" and b.text.startswith(starts)]
    assert len(found) == 1, (page, starts)
    return found[0]


def test_the_defaults_block_is_the_two_required_lines() -> None:
    from studies import parse_spec

    block = next(b for b in blocks(DOCS / "study-files.md") if b.lang == "toml")
    shown = parse_spec(block.text, "defaults")
    minimal = parse_spec('name = "my-study"\ndataset = "digits"\n', "minimal")
    for field in ("name", "description", "dataset", "objective", "sampler", "pruner"):
        assert getattr(shown, field) == getattr(minimal, field), field
    assert (shown.n_trials, shown.timeout, shown.heartbeat) == (
        minimal.n_trials,
        minimal.timeout,
        minimal.heartbeat,
    )


def test_the_example_study_file_marks_what_is_not_a_default() -> None:
    from studies import parse_spec

    blocks_ = [b for b in blocks(DOCS / "study-files.md") if b.lang == "toml"]
    example = blocks_[1]
    spec = parse_spec(example.text, "example")
    assert set(spec.objective.space.optimizers) == {"adamw", "sgd"}
    assert dict(spec.objective.constraints) == {"params": 50_000.0}
    assert spec.objective.space.training.min_steps == 300
    assert re.search(r"^min_steps = 300 +# example \(default 0\)", example.text, re.M)


def test_the_heartbeat_snippet_is_the_default() -> None:
    from studies import HeartbeatSpec

    spec = _parse_toml_block(_toml("many-machines.md", "[heartbeat]"))
    assert spec.heartbeat == HeartbeatSpec(interval=60, grace_period=180, max_retry=3)


def test_the_pruner_snippet_is_valid_for_a_multi_objective_study() -> None:
    spec = _parse_toml_block(_toml("pruning.md", "[pruner]"))
    assert spec.objectives == ("accuracy", "params")
    assert spec.pruner.name == "pareto_rank"
    assert dict(spec.pruner.options) == {"min_epochs": 1, "reduction_factor": 3, "min_trials": 4}


def test_every_catalog_study_is_named_in_the_study_files_page() -> None:
    text = (DOCS / "study-files.md").read_text()
    for path in (ROOT / "studies" / "spec" / "catalog").glob("*.toml"):
        assert f"`{path.stem}`" in text, path.stem


# --------------------------------------------------------------------------- benchmarks


def _shipped_benchmarks() -> set[str]:
    shipped = set()
    for path in (ROOT / "benchmarks").iterdir():
        if path.name.startswith("_"):
            continue
        if path.suffix == ".py":
            shipped.add(f"benchmarks.{path.stem}")
        elif (path / "__main__.py").exists():
            shipped.add(f"benchmarks.{path.name}")
        elif (path / "__init__.py").exists():
            shipped |= {
                f"benchmarks.{path.name}.{p.stem}"
                for p in path.glob("*.py")
                if not p.name.startswith("_")
            }
    return shipped


def test_every_benchmark_module_is_listed_and_every_listed_one_exists() -> None:
    text = (DOCS / "benchmarks.md").read_text()
    listed = set(re.findall(r"python -m (benchmarks(?:\.\w+)+)", text))
    shipped = _shipped_benchmarks()
    assert shipped <= listed, shipped - listed
    for name in listed:
        assert importlib.util.find_spec(name) is not None, name


def test_benchmarks_are_run_as_modules_everywhere() -> None:
    for page in PAGES:
        assert not re.search(r"python3? benchmarks/", page.read_text()), page.name


# ----------------------------------------------------------------------- run each page


def _benchmark_module(command: str) -> str | None:
    m = re.fullmatch(r"python -m (benchmarks(?:\.\w+)+)( .*)?", command)
    return m.group(1) if m else None


def _run_cli(words: list[str]) -> tuple[int, str]:
    """A ``nas-study`` command, in this process (no interpreter start-up per command), on
    a small budget; ``> FILE`` redirects its output."""
    from studies.cli import main

    tokens = list(words)
    out_file = None
    if ">" in tokens:
        at = tokens.index(">")
        tokens, out_file = tokens[:at], tokens[at + 1]
    argv = tokens[1:]
    argv += SMALL_BUDGET.get(next(t for t in argv if not t.startswith("-")), [])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    if out_file is not None:
        Path(out_file).write_text(out.getvalue())
    return status, out.getvalue()


def _pages_that_run() -> list[Path]:
    return [p for p in PAGES if any(b.lang in ("bash", "sh", "shell", "python") for b in blocks(p))]


@pytest.mark.parametrize("page", _pages_that_run(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_page_runs_top_to_bottom(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage import STORAGE_ENV_VAR

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORAGE_ENV_VAR, raising=False)  # the page's default storage, here
    monkeypatch.setenv("NAS_STUDY_OFFLINE", "1")
    ran: dict[str, str] = {}
    checked = not_run = 0
    for block in blocks(page):
        if block.lang == "python":
            namespace: dict[str, Any] = {"__name__": "docs_example"}
            exec(compile(block.text, str(block), "exec"), namespace)
            report = namespace.get("report")
            if report is not None:  # run_arrays: the budget it was given, nothing failed
                assert report.ran == 4 and report.failed == 0, block
            checked += 1
        elif block.lang in ("bash", "sh", "shell"):
            for words in shell_commands(block):
                command = _key(words)
                if command in NOT_RUN:
                    not_run += 1
                    continue
                module = _benchmark_module(command)
                if module is not None:
                    assert importlib.util.find_spec(module) is not None, (block, command)
                    checked += 1
                    continue
                assert words[0] == "nas-study", f"{block}: neither run nor in NOT_RUN: {command}"
                status, out = _run_cli(words)
                assert status == 0, f"{block}: {command}: exit {status}\n{out}"
                ran.setdefault(command, out)
    assert ran or checked or not_run, page
    if page == README:
        _check_sample_output(ran["nas-study run digits-mlp"])


def _check_sample_output(printed: str) -> None:
    """The README's sample output is what ``run`` prints: same title and columns."""
    text = README.read_text()
    sample = re.search(r"for example[^\n]*\n[^`]*```\n(.*?)```", text, re.S)
    assert sample is not None
    shown = sample.group(1).splitlines()
    real = printed.splitlines()
    assert shown[:2] == real[:2]
    for row in shown[3:]:  # trial, accuracy, params, epochs, arch
        trial, accuracy, params, epochs, _ = row.split(maxsplit=4)
        assert int(trial) >= 0 and 0 <= float(accuracy) <= 1 and int(params) > int(epochs) > 0


def test_every_line_not_run_is_still_in_the_docs() -> None:
    shown = {_key(c) for b in all_blocks("bash", "sh", "shell") for c in shell_commands(b)}
    assert set(NOT_RUN) <= shown, set(NOT_RUN) - shown


# ---------------------------------------------------------------------- follow one trial


def _trial_route() -> list[str]:
    """The README's "Follow one trial": the first module path of each numbered step."""
    section = _section(README.read_text(), "## Follow one trial")
    steps = re.findall(r"^\d+\. `([\w/]+\.py)`", section, re.M)
    assert steps
    return steps


#: The packages a trial's route runs through (not the tests, not a virtual environment).
_PACKAGES = ("studies", "storage", "nas_objectives")


def _stacks_of_writes(argv: list[str]) -> dict[str, list[str]]:
    """Run ``nas-study ARGV`` and record, for the first CREATE TABLE, the first INSERT of a
    study and the first INSERT of a trial, the project modules on the call stack."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    import studies
    from studies.cli import main

    code_root = Path(studies.__file__).resolve().parents[1]
    kinds = {
        "CREATE TABLE": "tables",
        "INSERT INTO STUDIES ": "study",
        "INSERT INTO TRIALS ": "trial",
    }
    stacks: dict[str, list[str]] = {}

    def hook(*args: Any) -> None:
        statement = str(args[2]).lstrip().upper()
        for prefix, kind in kinds.items():
            if statement.startswith(prefix) and kind not in stacks:
                modules: list[str] = []
                for frame in traceback.extract_stack():
                    path = Path(frame.filename).resolve()
                    if code_root not in path.parents:
                        continue
                    name = path.relative_to(code_root).as_posix()
                    if name.split("/")[0] in _PACKAGES and (not modules or modules[-1] != name):
                        modules.append(name)
                stacks[kind] = modules

    event.listen(Engine, "before_cursor_execute", hook)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(argv) == 0
    finally:
        event.remove(Engine, "before_cursor_execute", hook)
    return stacks


def _is_subsequence(part: list[str], whole: list[str]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def _route_of(stacks: list[list[str]]) -> list[str]:
    """The modules a run passes through, from its stacks in time order: each stack adds
    the module both share last (where the run came back to) and what it called anew."""
    route: list[str] = []
    previous: list[str] = []
    for stack in stacks:
        shared = 0
        while shared < min(len(stack), len(previous)) and stack[shared] == previous[shared]:
            shared += 1
        route += stack[max(shared - 1, 0) :] if previous else stack
        previous = stack
    return route


def test_route_of_stacks() -> None:
    a, b, c, d = "a.py", "b.py", "c.py", "d.py"
    assert _route_of([[a, b, c], [a, b, d], [a, c]]) == [a, b, c, b, d, a, c]


def test_follow_one_trial_is_the_route_of_a_real_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    route = _trial_route()
    assert len(set(route)) <= 8
    stacks = _stacks_of_writes(
        ["run", "digits-mlp", "--storage", f"sqlite:///{tmp_path / 't.db'}", *SMALL_BUDGET["run"]]
    )
    assert list(stacks) == ["tables", "study", "trial"]  # the order they happened in
    real = _route_of(list(stacks.values()))
    # The README names every module of the real route, in its order, and ends where the
    # trial's row is inserted.
    assert _is_subsequence(route, real), (route, real)
    assert set(route) == set(real), (route, real)
    assert route[-1] == real[-1] == stacks["trial"][-1]
