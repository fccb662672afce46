"""The embedded PostgreSQL refuses, clearly, data directories made by another major version."""

from __future__ import annotations

import pytest

from adiuva import embedded


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "DATA_DIR", tmp_path)
    return tmp_path


def _cluster(path, major: int) -> None:
    path.mkdir(parents=True)
    (path / "PG_VERSION").write_text(f"{major}\n")


def test_the_installed_server_is_postgresql_18():
    assert embedded._binary_major() == 18


def test_an_old_postgresql_16_directory_is_left_alone_and_reported(data_dir, capsys):
    # given the data directory of the PostgreSQL 16 embedded before
    _cluster(data_dir / "postgres", 16)

    # when the PostgreSQL 18 server picks its directory
    chosen = embedded._check_data_dirs(18)

    # then it gets a fresh one, says so, and the old one is untouched
    assert chosen == data_dir / "postgres18"
    assert "PostgreSQL 16" in capsys.readouterr().err
    assert (data_dir / "postgres" / "PG_VERSION").read_text().strip() == "16"


def test_a_directory_of_another_major_is_refused_with_what_to_do(data_dir, capsys, monkeypatch):
    # given a postgres18 directory that is not PostgreSQL 18's, and no DATABASE_URL
    _cluster(data_dir / "postgres18", 17)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(data_dir / "run"))

    # when the command line starts the services
    code = embedded.main(["env"])

    # then it stops with a message naming both versions and the fix, not a traceback
    assert code == 1
    message = capsys.readouterr().err
    assert "PostgreSQL 17" in message
    assert "PostgreSQL 18" in message
    assert "clean-data" in message


def test_a_matching_directory_is_used_silently(data_dir, capsys):
    _cluster(data_dir / "postgres18", 18)

    assert embedded._check_data_dirs(18) == data_dir / "postgres18"
    assert capsys.readouterr().err == ""
