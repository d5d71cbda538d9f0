"""``serviceaccounts/{name}/token``: the TokenRequest subresource (``kubectl create token``,
and what the kubelet calls to fill a pod's ``/var/run/secrets/kubernetes.io/serviceaccount``).
Pure: the caller reads the account and answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flotta.dev.kubeapi.authn import API_AUDIENCES, TokenKey, token_claims
from flotta.dev.kubeapi.errors import BadRequestError, Cause, InvalidError

GROUP = "authentication.k8s.io"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32


def _invalid(name: str, cause: Cause) -> InvalidError:
    return InvalidError(
        f'TokenRequest.{GROUP} "{name}" is invalid: {cause.field}: {cause.message}',
        name=name,
        group=GROUP,
        kind="TokenRequest",
        causes=(cause,),
    )


def issue_token(body: Any, account: dict[str, Any], key: TokenKey, *, now: float) -> dict[str, Any]:
    """The TokenRequest answer for ``account`` (a stored ServiceAccount)."""
    meta = account["metadata"]
    name, namespace = str(meta["name"]), str(meta.get("namespace", ""))
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a TokenRequest object")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise BadRequestError("spec must be an object")
    audiences = tuple(str(a) for a in spec.get("audiences") or ()) or API_AUDIENCES
    expiration = spec.get("expirationSeconds")
    seconds = DEFAULT_EXPIRATION if expiration is None else expiration
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise BadRequestError("spec.expirationSeconds must be an integer")
    if seconds < MIN_EXPIRATION:
        raise _invalid(
            name,
            Cause(
                "FieldValueInvalid",
                f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                "spec.expirationSeconds",
            ),
        )
    if seconds > MAX_EXPIRATION:
        raise _invalid(
            name,
            Cause(
                "FieldValueInvalid",
                f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds",
                "spec.expirationSeconds",
            ),
        )
    if spec.get("boundObjectRef"):
        raise _invalid(
            name,
            Cause(
                "FieldValueNotSupported",
                "Unsupported value: tokens bound to an object are not issued by this API"
                " (it runs no pods)",
                "spec.boundObjectRef",
            ),
        )
    issued = int(now)
    claims = token_claims(
        namespace=namespace,
        name=name,
        uid=str(meta["uid"]),
        audiences=audiences,
        expiration_seconds=seconds,
        now=issued,
    )
    expires = datetime.fromtimestamp(claims["exp"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "TokenRequest",
        "apiVersion": f"{GROUP}/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": {
            "audiences": list(audiences),
            "expirationSeconds": seconds,
            "boundObjectRef": None,
        },
        "status": {"token": key.sign(claims), "expirationTimestamp": expires},
    }
