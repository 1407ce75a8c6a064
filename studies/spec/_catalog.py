"""The shipped catalog of study files, and resolving a ``STUDY`` argument to a spec."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from studies.errors import StudySpecError
from studies.spec._parser import load_spec
from studies.spec._schema import StudySpec

#: The study ``nas-study run`` suggests first: offline, about a minute on a laptop CPU.
DEFAULT_STUDY = "digits-mlp"


def catalog_dir() -> Path:
    """Folder of the shipped ``*.toml`` study files (package data, so it survives a wheel)."""
    return Path(str(files("studies.spec") / "catalog"))


def catalog() -> list[StudySpec]:
    """Every shipped study, validated, sorted by name."""
    return sorted((load_spec(p) for p in catalog_dir().glob("*.toml")), key=lambda s: s.name)


def resolve_spec(study: str) -> StudySpec:
    """A path to a study file, or the name of a catalog study.

    Raises:
        StudySpecError: neither an existing file nor a catalog name, or the file is invalid.
    """
    path = Path(study)
    if path.suffix == ".toml" or path.exists():
        return load_spec(path)
    shipped = catalog_dir() / f"{study}.toml"
    if shipped.is_file():
        return load_spec(shipped)
    names = ", ".join(sorted(p.stem for p in catalog_dir().glob("*.toml")))
    raise StudySpecError(f"{study}: not a study file and not in the catalog (catalog: {names})")
