from __future__ import annotations

import pytest

from storage import (
    DEFAULT_STORAGE_URL,
    STORAGE_ENV_VAR,
    StorageURLError,
    parse_storage_url,
    redact_text,
    redact_url,
    resolve_storage_url,
)


def test_flag_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_storage_url(None) == DEFAULT_STORAGE_URL == "sqlite:///nas-study.db"
    monkeypatch.setenv(STORAGE_ENV_VAR, "postgresql://env/db")
    assert resolve_storage_url(None) == "postgresql://env/db"
    assert resolve_storage_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_empty_environment_variable_falls_back_to_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORAGE_ENV_VAR, "")
    assert resolve_storage_url(None) == DEFAULT_STORAGE_URL


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:s3cretpw@db.example:5432/optuna",
        "mysql+pymysql://bob:s3cretpw@db/optuna?charset=utf8mb4",
        "postgresql://alice@db/optuna?password=s3cretpw",
        "postgresql://alice@db/optuna?sslkey_password=s3cretpw&connect_timeout=5",
        "weird-scheme://carol:s3cretpw@host/x",
    ],
)
def test_redact_url_hides_every_secret(url: str) -> None:
    shown = redact_url(url)
    assert "s3cretpw" not in shown
    assert "***" in shown
    assert (
        redact_text(f"could not connect with {url}: s3cretpw rejected", url).count("s3cretpw") == 0
    )


def test_redact_url_keeps_the_rest_readable() -> None:
    shown = redact_url("postgresql://alice:pw@db:5432/optuna?connect_timeout=5")
    assert shown == "postgresql://alice:***@db:5432/optuna?connect_timeout=5"
    assert redact_url("sqlite:///nas-study.db") == "sqlite:///nas-study.db"


def test_grpc_urls_are_parsed() -> None:
    assert parse_storage_url("grpc://proxy.internal").port == 13000
    assert parse_storage_url("grpc://[::1]:14000").host == "::1"
    for bad in ("grpc://h:1/some_db", "grpc+tls://h:1", "grpc://h:1?timeout=3"):
        with pytest.raises(StorageURLError, match="grpc://HOST:PORT"):
            parse_storage_url(bad)
