"""Authentication: the admin token, and service-account tokens.

Service-account tokens are JWTs (RS256) that this API signs with a key it keeps in its state
directory (``service-account.key``), with the claims of Kubernetes' bound tokens (``iss``,
``sub``, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti`` and ``kubernetes.io``: the namespace and
the service account's name and uid). Why JWTs rather than opaque tokens kept in the store:
a token carries its own expiry and subject, so nothing is written per token and tokens
survive a restart as they do in a cluster; and clients that read a token (``kubectl create
token`` users decode it, some libraries read ``exp``) see what Kubernetes gives them. As in
Kubernetes, a token stops working when it expires or when its service account is deleted
(the uid in the token must be the live account's: a recreated account does not revive old
tokens). Legacy tokens (Secrets of type ``kubernetes.io/service-account-token``) are not
issued: since Kubernetes 1.24 pods get TokenRequest tokens, which is what is tested here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from flotta.dev.kubeapi.rbac import AUTHENTICATED, PRIVILEGED_GROUP, UserInfo, service_account_user

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)  # what kube-apiserver accepts by default: its issuer
ADMIN = UserInfo("kubernetes-admin", (PRIVILEGED_GROUP, AUTHENTICATED))
KEY_FILE = "service-account.key"
LEEWAY = 60  # seconds of clock skew allowed on nbf/iat
_CACHE_SIZE = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenKey:
    """The RS256 key service-account tokens are signed with."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._private = private_key
        self._public = private_key.public_key()
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = _b64(hashlib.sha256(der).digest())  # as kube-apiserver derives its kid

    @classmethod
    def load_or_create(cls, path: Path) -> TokenKey:
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{path} is not an RSA key")
            return cls(loaded)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        temporary.replace(path)
        return cls(key)

    def signing(self) -> TokenKey:
        return self

    def verifying(self) -> TokenKey | None:
        return self

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "RS256", "kid": self.key_id}
        signing_input = ".".join(
            _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this key signed, else None (expiry is not checked here)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            if not isinstance(header, dict) or header.get("alg") != "RS256":
                return None
            self._public.verify(
                _unb64(parts[2]),
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error, InvalidSignature):
            return None
        return claims if isinstance(claims, dict) else None


class KeyFile:
    """The signing key in its file, made when the first token is issued (an RSA key takes
    tens of milliseconds to make: a server that issues no token makes none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: TokenKey | None = None

    def signing(self) -> TokenKey:
        if self._key is None:
            self._key = TokenKey.load_or_create(self.path)
        return self._key

    def verifying(self) -> TokenKey | None:
        """The key, or None while there is none (no token was ever issued with it)."""
        if self._key is None and self.path.exists():
            self._key = TokenKey.load_or_create(self.path)
        return self._key


@dataclass(frozen=True)
class ServiceAccountToken:
    """What a valid token says."""

    namespace: str
    name: str
    uid: str
    expires: int
    not_before: int
    audiences: tuple[str, ...]

    def valid_at(self, now: float) -> bool:
        return self.not_before <= now + LEEWAY and now < self.expires


def token_claims(
    *,
    namespace: str,
    name: str,
    uid: str,
    audiences: tuple[str, ...],
    expiration_seconds: int,
    now: int,
) -> dict[str, Any]:
    """The claims of a bound service-account token, as kube-apiserver writes them."""
    return {
        "aud": list(audiences),
        "exp": now + expiration_seconds,
        "iat": now,
        "iss": ISSUER,
        "jti": secrets.token_hex(16),
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
        },
        "nbf": now,
        "sub": f"system:serviceaccount:{namespace}:{name}",
    }


def read_claims(
    claims: dict[str, Any], audiences: tuple[str, ...] = API_AUDIENCES
) -> ServiceAccountToken | None:
    """The service account a token's claims name, if they are issued here for one of
    ``audiences``; else None. Whether it is valid now is ``valid_at``'s to say."""
    if claims.get("iss") != ISSUER:
        return None
    given = claims.get("aud")
    token_audiences = tuple(given) if isinstance(given, list) else (str(given),)
    if not set(token_audiences) & set(audiences):
        return None
    try:
        expires = int(claims["exp"])
        not_before = int(claims.get("nbf", 0))
        info = claims["kubernetes.io"]
        namespace = str(info["namespace"])
        name = str(info["serviceaccount"]["name"])
        uid = str(info["serviceaccount"]["uid"])
    except (KeyError, TypeError, ValueError):
        return None
    if claims.get("sub") != f"system:serviceaccount:{namespace}:{name}":
        return None
    return ServiceAccountToken(namespace, name, uid, expires, not_before, token_audiences)


# (namespace, name) -> the live service account's uid, or None when there is none
AccountLookup = Callable[[str, str], str | None]


class Authenticator:
    """Maps a request's bearer token to a user: the admin, a service account, or nobody."""

    def __init__(
        self,
        admin_token: str,
        key: TokenKey | KeyFile,
        account_uid: AccountLookup,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._admin_token = admin_token
        self.key = key
        self._account_uid = account_uid
        self._clock = clock
        self._verified: dict[str, ServiceAccountToken | None] = {}

    def token(self, authorization: str) -> str:
        scheme, _, value = authorization.strip().partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def authenticate(self, authorization: str) -> UserInfo | None:
        token = self.token(authorization)
        if not token:
            return None
        if secrets.compare_digest(token, self._admin_token):
            return ADMIN
        found = self.review(token)
        if found is None:
            return None
        return service_account_user(found.namespace, found.name, found.uid)

    def review(
        self, token: str, audiences: tuple[str, ...] = API_AUDIENCES
    ) -> ServiceAccountToken | None:
        """The service account a token stands for, if it is valid now for one of
        ``audiences`` and its account is still the one it was issued for."""
        if audiences == API_AUDIENCES and token in self._verified:
            found = self._verified[token]  # a signature is checked once per token
        else:
            verifying = self.key.verifying()
            claims = None if verifying is None else verifying.verify(token)
            found = None if claims is None else read_claims(claims, audiences)
            if audiences == API_AUDIENCES:
                if len(self._verified) >= _CACHE_SIZE:
                    self._verified.clear()
                self._verified[token] = found
        if found is None or not found.valid_at(self._clock()):
            return None
        if self._account_uid(found.namespace, found.name) != found.uid:
            return None
        return found
