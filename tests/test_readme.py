"""The README's Quickstart is what CI runs, and what it promises exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quickstart_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1]
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
    readme_lines = [ln for ln in (ROOT / "README.md").read_text().splitlines()]
    matching = [ln for ln in readme_lines if re.match(r"^pip install .*pytest", ln)]
    assert matching[0] == _quickstart_lines()[1]


def test_readme_catalog_matches_the_shipped_files() -> None:
    text = (ROOT / "README.md").read_text()
    for path in (ROOT / "studies" / "spec" / "catalog").glob("*.toml"):
        assert f"`{path.stem}`" in text, path.stem


def test_readme_study_file_example_is_valid() -> None:
    from studies import parse_spec

    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    example = [b for b in blocks if 'name = "my-study"' in b]
    assert len(example) == 1
    spec = parse_spec(example[0], "README.md")
    assert spec.name == "my-study"
    assert set(spec.objective.space.optimizers) == {"adamw", "sgd"}
    assert dict(spec.objective.constraints) == {"params": 50_000.0}


def test_readme_heartbeat_example_is_valid() -> None:
    from studies import HeartbeatSpec, parse_spec

    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    snippet = next(b for b in blocks if b.lstrip().startswith("[heartbeat]"))
    spec = parse_spec('name = "x"\ndataset = "digits"\n' + snippet, "README.md")
    assert spec.heartbeat == HeartbeatSpec(interval=60, grace_period=180, max_retry=3)


def test_readme_pruner_example_is_valid_for_a_multi_objective_study() -> None:
    from studies import parse_spec

    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    snippet = next(b for b in blocks if b.lstrip().startswith("[pruner]"))
    spec = parse_spec('name = "x"\ndataset = "digits"\n' + snippet, "README.md")
    assert spec.objectives == ("accuracy", "params")
    assert spec.pruner.name == "pareto_rank"
    assert dict(spec.pruner.options) == {"min_epochs": 1, "reduction_factor": 3, "min_trials": 4}


def test_every_benchmark_the_readme_lists_exists_and_every_script_is_listed() -> None:
    text = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"`(benchmarks/[a-z_]+\.py)`", text))
    shipped = {
        f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py") if p.name[0] != "_"
    }
    assert listed == shipped


def test_readme_from_python_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("### From Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1 and "run_arrays" in blocks[0]
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    report = namespace["report"]
    assert report.ran == 4 and report.failed == 0  # type: ignore[attr-defined]
