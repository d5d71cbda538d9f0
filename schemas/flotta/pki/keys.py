"""Keys, certificates and CSRs: generation and PEM encoding.

Every key is EC P-256: small and fast on devices, accepted by Mosquitto and OpenSSL.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from flotta.pki.errors import CertificateError, CsrError, PkiError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

ACCEPTED_CURVES = ("secp256r1", "secp384r1")
MIN_RSA_BITS = 2048


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_to_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (the file holding it must be 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse a PEM private key (EC or RSA, unencrypted)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot read private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"unsupported private key type {type(key).__name__}")
    return key


def public_key_to_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_sha256(key: PublicKey) -> str:
    """The key's fingerprint: SHA-256 over its DER SubjectPublicKeyInfo, in lowercase hex."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return digest.finalize().hex()


def check_public_key(key: object) -> PublicKey:
    """Accept EC P-256/P-384 and RSA of at least 2048 bits; refuse everything else."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ACCEPTED_CURVES:
            raise CsrError(f"EC curve {key.curve.name} is not accepted (use P-256 or P-384)")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrError(f"RSA key of {key.key_size} bits is too small (at least {MIN_RSA_BITS})")
        return key
    raise CsrError(f"public key type {type(key).__name__} is not accepted (use EC P-256)")


def check_device_public_key(key: object) -> ec.EllipticCurvePublicKey:
    """Devices must use EC P-256: secrets are sealed for the device with ECDH on P-256."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        found = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise CsrError(f"device keys must be EC P-256 (secrets are sealed with it), got {found}")
    return key


def certificate_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificate(pem: bytes) -> x509.Certificate:
    """Parse the first certificate of a PEM file."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"cannot read certificate: {exc}") from None


def build_csr(key: PrivateKey, common_name: str) -> x509.CertificateSigningRequest:
    """A CSR with only a CN, as the device agent sends it."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    return builder.sign(key, hashes.SHA256())


def csr_to_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR and verify its self-signature."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise CsrError(f"cannot read CSR: {exc}") from None
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError) as exc:
        raise CsrError(f"cannot verify CSR signature: {exc}") from None
    if not valid:
        raise CsrError("CSR signature is invalid (the CSR was altered or signed with another key)")
    return csr
