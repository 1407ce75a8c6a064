from __future__ import annotations

import pytest

from nas_objectives import DATASETS
from studies import (
    DEFAULT_STUDY,
    StudySpecError,
    build_pruner,
    build_sampler,
    catalog,
    catalog_dir,
    resolve_spec,
)


def test_catalog_ships_the_promised_studies() -> None:
    specs = {s.name: s for s in catalog()}
    for name in (
        "digits-mlp",
        "digits-cnn",
        "fashion-mlp",
        "fashion-cnn",
        "mnist-cnn",
        "cifar10-cnn",
    ):
        assert name in specs
        assert len(specs[name].objectives) >= 2, name
    assert DEFAULT_STUDY == "digits-mlp"
    assert specs["digits-mlp"].dataset.name == "digits"  # offline
    single = [s for s in specs.values() if len(s.objectives) == 1 and s.pruner.name != "none"]
    assert single, "at least one single-objective study with a pruner"


def test_every_catalog_file_is_named_after_its_study_and_builds() -> None:
    for path in catalog_dir().glob("*.toml"):
        spec = resolve_spec(path.stem)
        assert spec.name == path.stem
        assert spec.dataset.name in DATASETS
        build_sampler(spec)
        build_pruner(spec)


def test_resolve_accepts_a_path(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\ndataset = "digits"\n')
    assert resolve_spec(str(path)).name == "mine"


def test_unknown_study_lists_the_catalog() -> None:
    with pytest.raises(StudySpecError, match="digits-mlp"):
        resolve_spec("no-such-study")
