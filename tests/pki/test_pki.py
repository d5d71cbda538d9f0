"""The fleet PKI: CA, certificates, CSR signing, revocation, the store and ``flotta pki``."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flotta.pki.authority import (
    DEVICE_VALIDITY,
    create_authority,
    issue_client_certificate,
    issue_server_certificate,
    sign_device_csr,
)
from flotta.pki.cert_info import (
    certificate_identity,
    device_certificate_info,
    device_certificate_info_from_pem,
    issued_by,
    same_public_key,
)
from flotta.pki.errors import (
    AuthorityExpiredError,
    CertificateError,
    CsrError,
    IdentityError,
    StoreError,
)
from flotta.pki.identities import Identity, Role, parse_identity
from flotta.pki.keys import build_csr, certificate_to_pem, csr_to_pem, generate_key, load_csr
from flotta.pki.revocation import decode_revoked, parse_serial
from flotta.pki.store import PkiStore
from tests.fixtures.sources import source_path

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _verify_client(ca: x509.Certificate, cert: x509.Certificate, at: datetime) -> None:
    """Signed by the CA and valid at ``at`` (TLS itself is tested against Mosquitto)."""
    cert.verify_directly_issued_by(ca)
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise ValueError(f"certificate not valid at {at}")


# ---- identities ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cn", "role", "name"),
    [
        ("internal:operator", Role.OPERATOR, "operator"),
        ("internal:bridge", Role.BRIDGE, "bridge"),
        ("observer:grafana", Role.OBSERVER, "grafana"),
        ("bootstrap:batch-1", Role.BOOTSTRAP, "batch-1"),
        ("dev-1", Role.DEVICE, "dev-1"),
    ],
)
def test_identity_roles(cn: str, role: Role, name: str) -> None:
    identity = parse_identity(cn)
    assert identity == Identity(role, name)
    assert identity.common_name == cn


@pytest.mark.parametrize(
    "cn", ["internal:admin", "observer:", "bootstrap:Batch", "Dev-1", "dev.1", "a:b", "", "x" * 64]
)
def test_identities_outside_the_contract_are_refused(cn: str) -> None:
    with pytest.raises(IdentityError):
        parse_identity(cn)


# ---- authority ----------------------------------------------------------------------------


def test_ca_is_a_self_signed_ca_that_signs_leaves_only() -> None:
    authority = create_authority(now=NOW)
    ca = authority.certificate
    assert ca.issuer == ca.subject
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    assert constraints.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    ca.verify_directly_issued_by(ca)


def test_server_certificate_names_loopback_and_extra_names() -> None:
    authority = create_authority(now=NOW)
    key = generate_key()
    cert = issue_server_certificate(
        authority,
        key.public_key(),
        hostnames=("localhost", "mqtt.example.org"),
        addresses=("127.0.0.1",),
        now=NOW,
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "mqtt.example.org"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    store = verification.Store([authority.certificate])
    verifier = (
        verification.PolicyBuilder()
        .store(store)
        .time(NOW + timedelta(days=1))
        .build_server_verifier(x509.DNSName("mqtt.example.org"))
    )
    verifier.verify(cert, [])


def test_client_certificate_carries_the_identity_as_cn() -> None:
    authority = create_authority(now=NOW)
    cert = issue_client_certificate(
        authority, generate_key().public_key(), parse_identity("observer:grafana"), now=NOW
    )
    assert certificate_identity(cert) == Identity(Role.OBSERVER, "grafana")
    _verify_client(authority.certificate, cert, NOW + timedelta(days=1))
    with pytest.raises(CertificateError, match="not a device certificate"):
        device_certificate_info(cert)


def test_device_csr_is_signed_with_the_cn_forced_and_a_short_validity() -> None:
    authority = create_authority(now=NOW)
    key = generate_key()
    # The device asks for more than it may have: no CN, a SAN and CA powers.
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evil")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("dev-2")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert = sign_device_csr(authority, csr, device_id="dev-1", namespace="edge", now=NOW)

    info = device_certificate_info(cert)
    assert (info.device_id, info.namespace) == ("dev-1", "edge")
    assert same_public_key(info.public_key, key.public_key())
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value != "evil"
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert DEVICE_VALIDITY <= lifetime <= DEVICE_VALIDITY + timedelta(minutes=10)
    _verify_client(authority.certificate, cert, NOW + timedelta(days=1))
    assert issued_by(cert, authority.certificate)
    assert not issued_by(cert, create_authority(now=NOW).certificate)
    assert device_certificate_info_from_pem(certificate_to_pem(cert)) == info
    with pytest.raises(ValueError, match="not valid at"):
        _verify_client(authority.certificate, cert, NOW + timedelta(days=8))


def test_device_csr_with_another_cn_is_refused() -> None:
    authority = create_authority(now=NOW)
    csr = build_csr(generate_key(), "dev-2")
    with pytest.raises(CsrError, match="'dev-2' does not match device id 'dev-1'"):
        sign_device_csr(authority, csr, device_id="dev-1", namespace="edge", now=NOW)


def test_tampered_csr_is_refused() -> None:
    pem = csr_to_pem(build_csr(generate_key(), "dev-1"))
    # Change the CN after signing: the self-signature no longer matches.
    tampered = _tampered(pem)
    assert load_csr(pem).is_signature_valid  # untouched, it loads
    with pytest.raises(CsrError, match="signature is invalid"):
        load_csr(tampered)
    with pytest.raises(CsrError, match="cannot read CSR"):
        load_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")


def _tampered(pem: bytes) -> bytes:
    """The same CSR with its CN changed after signing."""
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    assert der.count(b"dev-1") == 1
    body = base64.encodebytes(der.replace(b"dev-1", b"dev-9")).decode()
    return (
        f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n".encode()
    )


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(ec.generate_private_key(ec.SECP384R1()), id="p384"),
        pytest.param(rsa.generate_private_key(public_exponent=65537, key_size=2048), id="rsa"),
    ],
)
def test_device_keys_must_be_p256(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    authority = create_authority(now=NOW)
    with pytest.raises(CsrError, match="P-256"):
        sign_device_csr(
            authority, build_csr(key, "dev-1"), device_id="dev-1", namespace="edge", now=NOW
        )


def test_bad_device_id_or_namespace_is_refused() -> None:
    authority = create_authority(now=NOW)
    csr = build_csr(generate_key(), "x")
    with pytest.raises(IdentityError):
        sign_device_csr(authority, csr, device_id="Bad:id", namespace="edge", now=NOW)
    good = build_csr(generate_key(), "dev-1")
    with pytest.raises(IdentityError, match="namespace 'Edge NS' is not a DNS-1123 label"):
        sign_device_csr(authority, good, device_id="dev-1", namespace="Edge NS", now=NOW)


def test_expired_ca_refuses_to_sign_and_validity_ends_with_the_ca() -> None:
    authority = create_authority(validity=timedelta(days=3), now=NOW)
    csr = build_csr(generate_key(), "dev-1")
    cert = sign_device_csr(authority, csr, device_id="dev-1", namespace="edge", now=NOW)
    assert cert.not_valid_after_utc == authority.certificate.not_valid_after_utc
    with pytest.raises(AuthorityExpiredError, match="CA expired"):
        sign_device_csr(
            authority, csr, device_id="dev-1", namespace="edge", now=NOW + timedelta(days=4)
        )


# ---- store and revocation -----------------------------------------------------------------


def test_store_layout_and_key_permissions(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    store = PkiStore.create(root)
    store.issue_server()
    issued = store.issue_client(parse_identity("internal:bridge"))
    assert _mode(root) == 0o700
    for key in (store.ca_key_path, store.server_key_path, issued.key_path):
        assert _mode(key) == 0o600, key
    assert _mode(store.ca_cert_path) == 0o644
    assert issued.cert_path.name == "internal-bridge.crt"
    assert store.crl_path.is_file()
    assert not [p for p in root.rglob("*.tmp")]
    assert {c.serial_number for c in store.issued()} >= {issued.certificate.serial_number}
    with pytest.raises(StoreError, match="already holds a CA"):
        PkiStore.create(root)


def test_opening_a_missing_or_incomplete_store_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        PkiStore.open(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "ca.crt").write_text("x")
    with pytest.raises(StoreError, match=r"has no ca\.key"):
        PkiStore.open(tmp_path / "half")


def test_a_ca_key_others_can_read_is_refused(tmp_path: Path) -> None:
    store = PkiStore.create(tmp_path / "pki")
    store.ca_key_path.chmod(0o644)
    with pytest.raises(StoreError, match="must be 0600"):
        PkiStore.open(store.root).issue_server()


def test_revocation_lists_the_serial_in_a_signed_crl(tmp_path: Path) -> None:
    store = PkiStore.create(tmp_path / "pki")
    key = generate_key()
    cert = store.sign_device_csr(
        csr_to_pem(build_csr(key, "dev-1")), device_id="dev-1", namespace="edge"
    )
    assert store.revoke(cert.serial_number, note="dev-1")
    assert not store.revoke(cert.serial_number)  # idempotent
    crl = store.write_crl()
    assert crl.is_signature_valid(store.authority().certificate.public_key())  # type: ignore[arg-type]
    revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert revoked is not None
    loaded = x509.load_pem_x509_crl(store.crl_path.read_bytes())
    assert len(loaded) == 1
    assert loaded.next_update_utc is not None
    assert loaded.next_update_utc - datetime.now(UTC) > timedelta(days=29)
    assert [e.serial for e in PkiStore.open(store.root).revoked()] == [cert.serial_number]


def test_corrupt_revoked_list_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="corrupt"):
        decode_revoked(b'{"version": 1, "revoked": [{"serial": "zz"}]}')
    with pytest.raises(StoreError, match="version"):
        decode_revoked(b'{"version": 9, "revoked": []}')


def test_serials_are_read_in_hex() -> None:
    assert parse_serial("0x1A2B") == parse_serial("1a:2b") == 0x1A2B


# ---- flotta pki ---------------------------------------------------------------------------


def _pki(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = source_path()
    return subprocess.run(
        [sys.executable, "-m", "flotta.pki.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    d = ["--dir", str(root)]
    assert _pki("init", *d).returncode == 0
    assert (
        _pki("issue-server", *d, "--hostname", "localhost", "--address", "127.0.0.1").returncode
        == 0
    )
    assert _pki("issue-client", *d, "--identity", "internal:operator").returncode == 0
    assert _pki("issue-bootstrap", *d, "--batch", "factory").returncode == 0
    assert (root / "clients" / "bootstrap-factory.key").is_file()

    csr = tmp_path / "dev.csr"
    csr.write_bytes(csr_to_pem(build_csr(generate_key(), "dev-1")))
    out = tmp_path / "dev.crt"
    signed = _pki(
        "sign-csr",
        *d,
        "--device-id",
        "dev-1",
        "--namespace",
        "edge",
        "--csr",
        str(csr),
        "--out",
        str(out),
    )
    assert signed.returncode == 0, signed.stderr
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert device_certificate_info(cert).device_id == "dev-1"

    revoked = _pki("revoke", *d, "--cert", str(out))
    assert revoked.returncode == 0, revoked.stderr
    crl = x509.load_pem_x509_crl((root / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None

    shown = _pki("show", *d)
    assert shown.returncode == 0
    assert "dev-1" in shown.stdout
    assert "revoked" in shown.stdout
    assert _pki("crl", *d).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show"], "does not exist"),
        (["issue-client", "--identity", "dev-1"], "sign-csr"),
        (["issue-client", "--identity", "observer:Bad"], "DNS-1123"),
        (
            ["sign-csr", "--device-id", "dev-1", "--namespace", "ns", "--csr", "/nonexistent"],
            "No such file",
        ),
        (["revoke", "--serial", "xyz"], "hexadecimal"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    root = tmp_path / "pki"
    if args != ["show"]:
        PkiStore.create(root)
    result = _pki(args[0], "--dir", str(root), *args[1:])
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_refuses_a_csr_for_another_device(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    PkiStore.create(root)
    csr = tmp_path / "dev.csr"
    csr.write_bytes(csr_to_pem(build_csr(generate_key(), "dev-2")))
    result = _pki(
        "sign-csr",
        "--dir",
        str(root),
        "--device-id",
        "dev-1",
        "--namespace",
        "ns",
        "--csr",
        str(csr),
    )
    assert result.returncode == 2
    assert "does not match device id" in result.stderr
