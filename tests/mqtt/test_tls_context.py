"""The client's TLS context is built once and again only when its files change."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flotta.mqtt.settings import TlsFiles
from flotta.mqtt.tls_context import TlsContextCache
from flotta.pki.identities import parse_identity
from tests.fixtures.brokers import new_fleet_pki


def _files(tmp_path: Path) -> tuple[TlsFiles, Path]:
    pki = new_fleet_pki(tmp_path / "pki")
    issued = pki.issue_client(parse_identity("observer:cache"), out_dir=tmp_path / "creds")
    spare = pki.issue_client(parse_identity("observer:spare"), out_dir=tmp_path / "spare")
    shutil.copy(spare.cert_path, tmp_path / "renewed.crt")
    shutil.copy(spare.key_path, tmp_path / "renewed.key")
    return TlsFiles(pki.ca_cert_path, issued.cert_path, issued.key_path), tmp_path


def test_the_same_context_while_the_files_are_unchanged(tmp_path: Path) -> None:
    files, _ = _files(tmp_path)
    cache = TlsContextCache(files)
    assert cache.context() is cache.context()


def test_a_renewed_certificate_gives_a_new_context(tmp_path: Path) -> None:
    files, root = _files(tmp_path)
    assert files.cert is not None
    assert files.key is not None
    cache = TlsContextCache(files)
    first = cache.context()
    os.replace(root / "renewed.key", files.key)  # as the agent renews: new files renamed in
    os.replace(root / "renewed.crt", files.cert)
    assert cache.context() is not first


def test_missing_files_raise_and_nothing_is_cached(tmp_path: Path) -> None:
    files, _ = _files(tmp_path)
    assert files.cert is not None
    cache = TlsContextCache(files)
    cache.context()
    files.cert.unlink()
    with pytest.raises(FileNotFoundError):
        cache.context()
