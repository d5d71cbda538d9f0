"""Errors of the fleet PKI, each with a message an administrator can act on.

PkiError                  anything the PKI refuses to do
├── StoreError            the PKI directory is missing, incomplete or unreadable
├── IdentityError         an identity (CN) that no certificate may carry
├── CsrError              a CSR that cannot be signed (unparsable, bad signature, weak key)
├── CertificateError      a certificate that cannot be read or is not what was expected
└── AuthorityExpiredError      the CA is expired or ends before the certificate would
"""

from __future__ import annotations


class PkiError(Exception):
    """The fleet PKI refused an operation."""


class StoreError(PkiError):
    """The PKI directory is missing, incomplete or unreadable."""


class IdentityError(PkiError):
    """An identity that no certificate may carry."""


class CsrError(PkiError):
    """A certificate signing request that cannot be signed."""


class CertificateError(PkiError):
    """A certificate that cannot be read or does not carry what was expected."""


class AuthorityExpiredError(PkiError):
    """The CA cannot sign: it is expired, not yet valid, or ends too soon."""
