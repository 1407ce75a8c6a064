"""The ready-made deployment files run real nas-study commands on catalog studies."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import yaml

from studies import resolve_spec
from studies.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "deploy"


def test_slurm_script_is_valid_bash_running_a_worker() -> None:
    script = DEPLOY / "slurm-workers.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "#SBATCH --array=" in text and "#SBATCH --signal=TERM@" in text
    command = re.search(r"exec srun (nas-study worker .*?)\n(?!\s)", text, re.S)
    assert command is not None
    words = shlex.split(command.group(1).replace("\\\n", " "))
    # The study is the script's first argument, by default the one its usage line submits.
    default = re.search(r'^study="\$\{1:-(.*?)\}"$', text, re.M)
    usage = re.search(r"sbatch .*slurm-workers\.sbatch (\S+)$", text, re.M)
    assert default is not None and usage is not None
    study = default.group(1)
    assert study == usage.group(1) == "fashion-cnn"
    # The arguments parse as a real worker command line, on that study.
    args = build_parser().parse_args(
        [study if w == "$study" else "0" if "$" in w else w for w in words[1:]]
    )
    assert args.command == "worker" and args.device == "cuda" and args.study == study
    # The default names a catalog study, with the objectives and budget the workers run to.
    spec = resolve_spec(study)
    assert spec.name == study
    assert spec.objectives == ("accuracy", "params")
    assert spec.n_trials > 0


def test_kubernetes_indexed_job_runs_workers_with_the_url_from_a_secret() -> None:
    job = yaml.safe_load((DEPLOY / "k8s-indexed-job.yaml").read_text())
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["NAS_STUDY_STORAGE"]["valueFrom"]
    line = container["args"][0].replace('"$JOB_COMPLETION_INDEX"', "3")
    words = shlex.split(line)
    assert words[:3] == ["exec", "nas-study", "worker"]
    args = build_parser().parse_args(words[2:])
    assert args.worker_index == 3 and args.device == "cuda"
    assert resolve_spec(args.study).name == args.study
