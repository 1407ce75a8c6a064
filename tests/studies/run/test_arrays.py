"""Studies on arrays in memory: ``tensor_data_from_arrays`` and ``run_arrays``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas_objectives import DatasetError, tensor_data_from_arrays
from studies import RunOptions, StudyRunError, StudySpecError, resolve_spec, run_arrays

FAST = RunOptions(n_trials=2, epochs=1, device="cpu")
SMALL_CNN: dict[str, Any] = {
    "name": "small-cnn",
    "model": {"family": "cnn", "depth": [1, 2], "width": [4, 8]},
    "training": {"batch_size": [32, 64]},
    "sampler": {"name": "random"},
}


def _tabular(n: int = 90, f: int = 4, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % k
    return rng.normal(size=(n, f)) + y[:, None], y


def _complete(report: Any) -> list[optuna.trial.FrozenTrial]:
    return report.study.get_trials(states=(TrialState.COMPLETE,))


def test_numpy_tabular_with_the_default_mlp_study() -> None:
    x, y = _tabular()
    report = run_arrays(x, y, options=FAST)
    assert report.ran == 2 and report.failed == 0
    assert report.study.study_name == "digits-mlp"
    assert len(_complete(report)) == 2
    assert report.study.metric_names == ["accuracy", "params"]


def test_torch_images_with_digits_cnn() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 2
    x = torch.randn(60, 1, 8, 8, generator=g) + y[:, None, None, None]
    report = run_arrays(x, y, "digits-cnn", options=FAST)
    assert report.ran == 2 and report.failed == 0, report.last_failure
    assert all(t.params["n_blocks"] >= 1 for t in _complete(report))


def test_a_dict_study_and_a_parsed_spec_are_used() -> None:
    x = np.random.default_rng(1).normal(size=(40, 3, 6, 6)).astype(np.float32)
    y = np.array(["cat", "dog"] * 20)
    report = run_arrays(x, y, SMALL_CNN, options=FAST)
    assert report.study.study_name == "small-cnn" and report.failed == 0
    spec = resolve_spec("digits-mlp")
    report = run_arrays(*_tabular(), spec, options=FAST, study_name="from-spec")
    assert report.study.study_name == "from-spec" and report.ran == 2


def test_a_cnn_on_tabular_data_is_refused_in_one_line() -> None:
    with pytest.raises(DatasetError, match=r"model\.family: a cnn needs images") as info:
        run_arrays(*_tabular(), "digits-cnn", options=FAST)
    assert "\n" not in str(info.value)


def test_a_bad_study_is_refused() -> None:
    with pytest.raises(StudySpecError):
        run_arrays(*_tabular(), "no-such-study", options=FAST)
    with pytest.raises(StudySpecError):
        run_arrays(*_tabular(), {"epochs": "many"}, options=FAST)


def test_given_val_and_test_splits_are_used_as_given() -> None:
    x, y = _tabular(60)
    xv, yv = _tabular(7)
    xt, yt = _tabular(11)
    data = tensor_data_from_arrays(x, y, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (60, 7, 11)
    assert data.input_shape == (4, 1, 1) and data.classes == ("0", "1", "2")
    only_test = tensor_data_from_arrays(x, y, x_test=torch.from_numpy(xt), y_test=yt)
    assert len(only_test.x_test) == 11 and len(only_test.x_train) + len(only_test.x_val) == 60
    carved = tensor_data_from_arrays(x, y)  # 20% test, then 20% of the rest for validation
    assert (len(carved.x_train), len(carved.x_val), len(carved.x_test)) == (38, 10, 12)
    # The run validates on the given split: accuracy is a count out of its 7 rows.
    report = run_arrays(x, y, options=FAST, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
    for t in _complete(report):
        assert t.values[0] * 7 == pytest.approx(round(t.values[0] * 7))


def test_same_normalisation_and_labels_as_a_tensors_file(tmp_path: Path) -> None:
    from nas_objectives import load_dataset

    x, y = _tabular(50)
    y = y * 10 + 2  # labels 2, 12, 22: mapped in numeric order
    np.savez(tmp_path / "t.npz", x=x, y=y)
    from_file = load_dataset("tensors", path=tmp_path / "t.npz", seed=3)
    from_arrays = tensor_data_from_arrays(x, y, seed=3)
    assert from_arrays.classes == from_file.classes == ("2", "12", "22")
    assert from_arrays.mean == from_file.mean and from_arrays.std == from_file.std
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(from_arrays, split), getattr(from_file, split)), split


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.ones((5, 2)), np.arange(4) % 2, r"arrays: x has 5 rows but y has 4"),
        (np.ones((6, 2)), np.zeros(6), r"arrays: y: a classifier needs at least 2 classes"),
        (np.ones((4, 2)), np.array([0, 1.5, 0, 1]), r"y: labels must be whole numbers \(got 1.5\)"),
        (np.array([[np.nan, 1.0]] * 4), np.arange(4) % 2, r"arrays: x holds NaN or infinite"),
        (
            np.ones(4),
            np.arange(4) % 2,
            r"arrays: x must be \(N, C, H, W\) or \(N, F\) \(got \(4,\)\)",
        ),
        (
            np.ones((4, 2)),
            np.array([0, np.nan, 0, 1]),
            r"y: labels must be whole numbers \(got nan\)",
        ),
    ],
)
def test_bad_arrays_raise_a_one_line_dataset_error(x: Any, y: Any, message: str) -> None:
    with pytest.raises(DatasetError, match=message) as info:
        tensor_data_from_arrays(x, y)
    assert "\n" not in str(info.value)
    with pytest.raises(DatasetError, match=message):
        run_arrays(x, y, options=FAST)


def test_a_val_split_without_labels_is_refused() -> None:
    x, y = _tabular()
    with pytest.raises(DatasetError, match="arrays: y_val: missing, but x_val is given"):
        tensor_data_from_arrays(x, y, x_val=x)
    with pytest.raises(
        DatasetError,
        match=r"arrays: x arrays differ in shape per sample \(got \{'x': \(4,\), 'x_test'",
    ):
        tensor_data_from_arrays(x, y, x_test=x[:, :2], y_test=y)


def test_a_sqlite_url_keeps_the_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'arrays.db'}"
    report = run_arrays(*_tabular(), storage=url, options=FAST, study_name="kept")
    assert report.ran == 2
    study = optuna.load_study(study_name="kept", storage=url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert study.metric_names == ["accuracy", "params"]
    assert all("arch" in t.user_attrs for t in study.trials)
    # Joining it again with the budget already met runs nothing.
    again = run_arrays(*_tabular(), storage=url, options=FAST, study_name="kept")
    assert again.ran == 0
    with pytest.raises(StudyRunError):  # same name, other objectives
        run_arrays(*_tabular(), {"objectives": ["accuracy"]}, storage=url, study_name="kept")
