"""``check_storage``: which schema a database has, and whether Optuna must upgrade it."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import sqlalchemy

from storage._engine import database_errors, engine_kwargs
from storage._errors import StorageURLError
from storage._open import schema_mismatch_message
from storage._rdb.sqlite import check_sqlite_directory
from storage._url import parse_storage_url, redact_url


@dataclass(frozen=True)
class StorageStatus:
    """What :func:`check_storage` found.

    Attributes:
        url: The storage URL, password masked.
        backend: ``sqlite``, ``postgresql`` or ``mysql``.
        schema_version: The Alembic revision of the database's tables.
        head_version: The revision this Optuna writes and expects.
        needs_upgrade: The schema is older than ``head_version``; ``optuna storage upgrade``
            brings it up to date.
        n_studies: How many studies the database holds.
    """

    url: str
    backend: str
    schema_version: str
    head_version: str
    needs_upgrade: bool
    n_studies: int

    @property
    def up_to_date(self) -> bool:
        """The schema is the one this Optuna expects."""
        return self.schema_version == self.head_version

    @property
    def message(self) -> str:
        """One line: the schema is current, or what to do about it."""
        if self.up_to_date:
            return f"storage {self.url}: schema {self.schema_version} is up to date"
        return schema_mismatch_message(
            self.url, self.schema_version, self.head_version, known=self.needs_upgrade
        )


def check_storage(url: str) -> StorageStatus:
    """Report the schema version and size of the database at ``url``, without failing on an
    outdated schema.

    A database with no Optuna tables yet gets them, exactly as :func:`open_storage` would
    create them; an existing one is only read.

    Raises:
        StorageURLError: the URL is malformed, or names a ``grpc://`` proxy (check the
            database behind it).
        StorageError: the database cannot be reached or its driver is not installed.

    Example:
        >>> status = check_storage("sqlite:///:memory:")
        >>> status.needs_upgrade, status.n_studies
        (False, 0)
    """
    parsed = parse_storage_url(url)
    backend = parsed.get_backend_name()
    if backend == "grpc":
        raise StorageURLError(
            f"storage URL {redact_url(url)!r}: check the database behind the gRPC proxy instead"
        )
    if backend == "sqlite":
        check_sqlite_directory(parsed, url)
    secret_url = parsed.render_as_string(hide_password=False)
    kwargs = engine_kwargs(parsed, pool_size=1)
    with database_errors(url, parsed):
        probe = sqlalchemy.create_engine(secret_url, **kwargs)
        try:
            has_tables = sqlalchemy.inspect(probe).has_table("version_info")
        finally:
            probe.dispose()
        # Like `optuna storage upgrade`: touch no table of an existing database.
        storage = optuna.storages.RDBStorage(
            secret_url,
            engine_kwargs=kwargs,
            skip_compatibility_check=True,
            skip_table_creation=has_tables,
        )
        try:
            current = storage.get_current_version()
            head = storage.get_head_version()
            known = current in storage.get_all_versions()
            with storage.engine.connect() as conn:
                n_studies = conn.execute(
                    sqlalchemy.select(sqlalchemy.func.count()).select_from(
                        sqlalchemy.table("studies")
                    )
                ).scalar_one()
        finally:
            storage.engine.dispose()
    return StorageStatus(
        url=redact_url(url),
        backend=backend,
        schema_version=current,
        head_version=head,
        needs_upgrade=current != head and known,
        n_studies=int(n_studies),
    )
