"""What a study is: the study-file schema, its parser and the shipped catalog.

Example:
    >>> from studies.spec import resolve_spec
    >>> resolve_spec("digits-mlp").objectives
    ('accuracy', 'params')
"""

from __future__ import annotations

from studies.spec._catalog import DEFAULT_STUDY, catalog, catalog_dir, resolve_spec
from studies.spec._parser import load_spec, parse_spec, spec_from_data
from studies.spec._schema import ComponentSpec, DatasetSpec, HeartbeatSpec, StudySpec
from studies.spec._space import SpaceChange, space_change

__all__ = [
    "DEFAULT_STUDY",
    "ComponentSpec",
    "DatasetSpec",
    "HeartbeatSpec",
    "SpaceChange",
    "StudySpec",
    "catalog",
    "catalog_dir",
    "load_spec",
    "parse_spec",
    "resolve_spec",
    "space_change",
    "spec_from_data",
]
