"""The ``nas-study`` command line, end to end, on real SQLite files (and PostgreSQL)."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from storage import open_storage
from studies.cli import main

PYTHON_CLI = [sys.executable, "-m", "studies"]


def _run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    full_env = {**os.environ, "CI": "true", **(env or {})}
    full_env.pop("NAS_STUDY_STORAGE", None) if "NAS_STUDY_STORAGE" not in (env or {}) else None
    return subprocess.run(
        [*PYTHON_CLI, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300
    )


def test_run_default_study_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/e2e.db"
    proc = _run_cli("run", "digits-mlp", "--n-trials", "4", "--storage", url)
    assert proc.returncode == 0, proc.stderr
    assert "Pareto-optimal trials of 'digits-mlp'" in proc.stdout
    header = proc.stdout.splitlines()[1].split()
    assert header == ["trial", "accuracy", "params", "epochs", "arch"]
    assert "%|" not in proc.stderr  # no progress bar under CI=true
    assert "Traceback" not in proc.stderr

    study = optuna.load_study(study_name="digits-mlp", storage=open_storage(url))
    assert study.metric_names == ["accuracy", "params"]
    trials = study.get_trials()
    assert len(trials) == 4
    for t in trials:
        assert t.state == TrialState.COMPLETE
        accuracy, params = t.values
        assert 0.0 < accuracy <= 1.0
        assert params == t.user_attrs["params"]
        assert t.user_attrs["flops"] > 0
        assert t.user_attrs["epochs_run"] == 15
        assert len(t.user_attrs["val_accuracy"]) == 15
        assert t.user_attrs["train_seconds"] > 0
        assert t.user_attrs["device"] == "cpu"
        assert " | " in t.user_attrs["arch"] and t.user_attrs["arch"].startswith("64-")
    # Every Pareto trial is printed with its architecture summary.
    for t in study.best_trials:
        assert t.user_attrs["arch"] in proc.stdout


def test_rerun_joins_the_study_and_respects_its_budget(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/join.db"
    common = ["--storage", url, "--epochs", "1"]
    assert main(["run", "digits-mlp", "--n-trials", "2", *common]) == 0
    assert main(["run", "digits-mlp", "--n-trials", "2", *common]) == 0  # budget met: no trial
    assert "ran 0 trial(s) here; the study has 2/2" in capsys.readouterr().err
    assert main(["run", "digits-mlp", "--n-trials", "3", *common]) == 0  # budget raised: one more
    study = optuna.load_study(study_name="digits-mlp", storage=open_storage(url))
    assert len(study.trials) == 3


def test_storage_resolution_flag_beats_env_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["run", "--n-trials", "1", "--epochs", "1"]  # no STUDY: the default, digits-mlp
    assert main(args) == 0
    assert (tmp_path / "nas-study.db").exists()  # the embedded default

    monkeypatch.setenv("NAS_STUDY_STORAGE", f"sqlite:///{tmp_path}/env.db")
    assert main(args) == 0
    assert (tmp_path / "env.db").exists()

    assert main([*args, "--storage", f"sqlite:///{tmp_path}/flag.db"]) == 0
    counts = {
        name: len(
            optuna.load_study(
                study_name="digits-mlp", storage=open_storage(f"sqlite:///{tmp_path}/{name}")
            ).trials
        )
        for name in ("nas-study.db", "env.db", "flag.db")
    }
    assert counts == {"nas-study.db": 1, "env.db": 1, "flag.db": 1}


def test_study_name_seed_and_postgres(storage_url: str, unique_name: str, capsys) -> None:
    args = ["--storage", storage_url, "--epochs", "1", "--n-trials", "2", "--seed", "7"]
    assert main(["run", "digits-mlp", "--study-name", unique_name, *args]) == 0
    assert main(["studies", "--storage", storage_url]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith(unique_name))
    assert "max:accuracy min:params" in line
    assert "accuracy=" in line and "params=" in line
    study = optuna.load_study(study_name=unique_name, storage=open_storage(storage_url))
    assert len(study.trials) == 2


def test_best_in_all_formats(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/best.db"
    assert main(["run", "digits-mlp", "--n-trials", "3", "--epochs", "2", "--storage", url]) == 0
    capsys.readouterr()
    study = optuna.load_study(study_name="digits-mlp", storage=open_storage(url))
    pareto = {t.number for t in study.best_trials}

    assert main(["best", "digits-mlp", "--storage", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["trial"] for r in rows} == pareto
    assert all(
        set(r) == {"trial", "accuracy", "params", "epochs", "arch", "val_accuracy"} for r in rows
    )
    assert all(len(r["val_accuracy"]) == r["epochs"] == 2 for r in rows)

    assert main(["best", "digits-mlp", "--storage", url, "--format", "csv"]) == 0
    rows_csv = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {int(r["trial"]) for r in rows_csv} == pareto

    assert main(["best", "digits-mlp", "--storage", url]) == 0
    assert "Pareto-optimal trials" in capsys.readouterr().out


def test_single_objective_study_reports_and_prunes(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/so.db"
    assert (
        main(["run", "digits-mlp-hpo", "--n-trials", "8", "--epochs", "4", "--storage", url]) == 0
    )
    assert "Best trial of 'digits-mlp-hpo' (accuracy)" in capsys.readouterr().out
    study = optuna.load_study(study_name="digits-mlp-hpo", storage=open_storage(url))
    for t in study.trials:
        assert set(t.intermediate_values) == set(range(1, t.user_attrs["epochs_run"] + 1))


def test_catalog_lists_one_line_per_study(capsys) -> None:
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("digits-mlp ") for line in out)
    assert len(out) == 2 + len(
        list((Path(__file__).parents[3] / "studies" / "spec" / "catalog").glob("*.toml"))
    )


def test_all_failing_trials_are_recorded_and_stop_the_run(tmp_path: Path, capsys) -> None:
    study_file = tmp_path / "diverge.toml"
    study_file.write_text(
        'name = "diverge"\ndataset = "digits"\nepochs = 2\nn_trials = 20\n'
        "[model]\ndepth = 2\nwidth = 256\nactivation = 'elu'\n"
        "[optimizers.sgd]\nlr = 10.0\nmomentum = 0.99\n"
        "[sampler]\nname = 'random'\n"
    )
    url = f"sqlite:///{tmp_path}/fail.db"
    assert main(["run", str(study_file), "--storage", url]) == 1
    err = capsys.readouterr().err
    assert "stopped after 5 failed trials in a row" in err and "non-finite" in err
    study = optuna.load_study(study_name="diverge", storage=open_storage(url))
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 5
    assert all("non-finite" in t.user_attrs["fail_reason"] for t in study.trials)


BAD_FILES = {
    "syntax": ('name = "x"\ndataset = "digits"\nepochs == 3\n', "invalid TOML"),
    "unknown-field": ('name = "x"\ndataset = "digits"\nflavour = "mint"\n', "flavour"),
    "unknown-dataset": ('name = "x"\ndataset = "imagenet"\n', "dataset.name"),
    "empty-range": ('name = "x"\ndataset = "digits"\n[model]\nwidth = [64, 8]\n', "model.width"),
    "unknown-optimizer": (
        'name = "x"\ndataset = "digits"\n[optimizers.lion]\nlr = 1e-3\n',
        "optimizers.lion",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_study_file_exits_2_with_one_line(tmp_path: Path, case: str, capsys) -> None:
    text, field = BAD_FILES[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    url = f"sqlite:///{tmp_path}/keep.db"
    assert main(["run", "digits-mlp", "--n-trials", "1", "--epochs", "1", "--storage", url]) == 0
    capsys.readouterr()
    assert main(["run", str(path), "--storage", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(path) in err[0] and field in err[0]
    # Nothing already stored is lost.
    assert len(optuna.load_study(study_name="digits-mlp", storage=open_storage(url)).trials) == 1


def test_bad_input_through_the_real_entry_point_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\ndataset = "digits"\n[optimizers.adamw]\nlr = [0.1, 0.001]\n')
    proc = _run_cli("run", str(path), "--storage", f"sqlite:///{tmp_path}/x.db")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "optimizers.adamw.lr" in proc.stderr and "0.1" in proc.stderr

    proc = _run_cli("run", "digits-mlp", "--storage", "redis://localhost:6379/0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "nas-study: error: storage URL 'redis://localhost:6379/0': unknown scheme 'redis' "
        "(supported: sqlite, postgresql, mysql, grpc)"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "digits-mlp", "--storage", "mongodb://h/db"], "unknown scheme 'mongodb'"),
        (["run", "digits-mlp", "--device", "cuda"], "CUDA is not available"),
        (["run", "digits-mlp", "--device", "tpu"], "expected auto, cpu, cuda or cuda:N"),
        (["run", "no-such-study"], "not in the catalog"),
        (["best", "nothing-here"], "no database file at nas-study.db"),
        (["studies", "--storage", "sqlite:///typo.db"], "no database file at typo.db"),
        (["run", "digits-mlp", "--n-trials", "0"], "must be at least 1"),
        (["worker", "digits-mlp", "--max-retry", "-1"], "must be 0 or more"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    argparse_error = "--n-trials" in args or "--max-retry" in args
    before = set(tmp_path.iterdir())
    code: int | str | None
    if argparse_error:
        with pytest.raises(SystemExit) as exited:
            main(args)
        code = exited.value.code
    else:
        code = main(args)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert set(tmp_path.iterdir()) == before  # a refused command creates no database file


def test_missing_torchvision_dataset_says_where_to_put_it(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    code = main(["run", "mnist-cnn", "--data-dir", str(tmp_path / "data"), "--storage", url])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert str(tmp_path / "data") in err and "MNIST/raw" in err and "--data-dir" in err
    # Nothing was created for a study that could not start.
    assert not optuna.get_all_study_summaries(open_storage(url))


def test_unreachable_database_hides_the_password(capsys) -> None:
    url = "postgresql://postgres:hunter2pw@127.0.0.1:9/test?connect_timeout=3"
    assert main(["studies", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "hunter2pw" not in err and "127.0.0.1:9" in err and err.count("\n") == 1


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    # A real pseudo-terminal as stderr: the bar is shown when CI is unset.
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NAS_STUDY_STORAGE")}
    leader, follower = pty.openpty()
    # A fresh pty is 0x0; tqdm draws nothing that narrow. Give it a real terminal's size.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [
            *PYTHON_CLI,
            "run",
            "digits-mlp",
            "--n-trials",
            "2",
            "--epochs",
            "1",
            "--storage",
            f"sqlite:///{tmp_path}/tty.db",
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    assert proc.returncode == 0
    tty_err = b"".join(chunks).decode(errors="replace")
    assert "100%|" in tty_err and "2/2" in tty_err  # tqdm's bar
    assert "Warning" not in tty_err


def test_worker_stops_at_its_own_max_trials(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    args = ["worker", "digits-mlp", "--storage", url, "--epochs", "1", "--n-trials", "10"]
    assert main([*args, "--max-trials", "2"]) == 0
    assert "ran 2 trial(s) here; the study has 2/10" in capsys.readouterr().err
    assert main([*args, "--max-trials", "20"]) == 0  # the global budget stops it first
    assert "ran 8 trial(s) here; the study has 10/10" in capsys.readouterr().err


def test_same_seed_and_worker_index_sample_the_same(tmp_path: Path) -> None:
    def params(name: str, *extra: str) -> list[dict]:
        url = f"sqlite:///{tmp_path}/{name}.db"
        args = ["worker", "digits-mlp", "--storage", url, "--epochs", "1", "--n-trials", "4"]
        assert main([*args, "--seed", "11", *extra]) == 0
        return [t.params for t in optuna.load_study(study_name="digits-mlp", storage=url).trials]

    first = params("a")
    assert params("b") == first  # a rerun with the same seed and worker index
    assert params("c", "--worker-index", "1") != first  # another worker samples differently


def test_storage_check_reports_the_schema(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/check.db"
    assert main(["run", "digits-mlp", "--n-trials", "1", "--epochs", "1", "--storage", url]) == 0
    capsys.readouterr()
    assert main(["storage", "check", url]) == 0
    out = capsys.readouterr().out
    assert "backend:        sqlite" in out
    assert "studies:        1" in out
    assert "upgrade needed: no" in out
    assert main(["storage", "check", "postgresql://postgres:pw@127.0.0.1:9/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ":pw@" not in err


def test_only_our_own_info_logs_reach_the_user(tmp_path: Path, capsys) -> None:
    # kaleido's browser logs "TemporaryDirectory.cleanup() worked." at INFO: a library's
    # INFO lines must not reach a user's terminal, while nas-study's own still do.
    assert main(["catalog"]) == 0
    capsys.readouterr()
    logging.getLogger("choreographer.utils._tmpfile").info("library chatter")
    logging.getLogger("studies.results._report").info("our progress")
    logging.getLogger("choreographer").warning("library warning")
    assert capsys.readouterr().err.splitlines() == ["our progress", "library warning"]


def test_launch_workers_per_gpu_shares_each_gpu_and_needs_gpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from studies.run import gpu_slots

    # Worker i takes slot i % 4: two workers side by side on each GPU.
    assert gpu_slots(["0", "1"], 2) == ["0", "0", "1", "1"]
    assert gpu_slots(["3"], 1) == ["3"]
    url = f"sqlite:///{tmp_path}/launch.db"
    assert main(["launch", "digits-mlp", "--storage", url, "--workers-per-gpu", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nas-study: error: launch: --workers-per-gpu 2 needs --gpus"
    assert main(["launch", "digits-mlp", "--storage", url]) == 2
    assert "give --workers N, or --gpus LIST" in capsys.readouterr().err
    assert not (tmp_path / "launch.db").exists()  # refused before any storage was opened
