"""Decoding of the Kubernetes protobuf envelope for the few kinds kubectl creates imperatively.

``kubectl create configmap|secret|namespace`` (and serviceaccount, role, rolebinding, token,
and ``kubectl auth``) send ``application/vnd.kubernetes.protobuf``;
this turns those bodies into the JSON-shaped dicts the rest of the server handles. Other
kinds are refused (the caller answers 415).
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A body this decoder does not understand."""


# message name -> field number -> (JSON name, type)
_MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "message:TypeMeta"), 2: ("raw", "raw")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        7: ("generation", "int"),
        11: ("labels", "map:string"),
        12: ("annotations", "map:string"),
        13: ("ownerReferences", "repeated:message:OwnerReference"),
        14: ("finalizers", "repeated:string"),
    },
    "OwnerReference": {
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "ConfigMap": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("data", "map:string"),
        3: ("binaryData", "map:bytes"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("data", "map:bytes"),
        3: ("type", "string"),
        4: ("stringData", "map:string"),
        5: ("immutable", "bool"),
    },
    "Namespace": {1: ("metadata", "message:ObjectMeta"), 2: ("spec", "message:NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "repeated:string")},
    # kubectl create serviceaccount|role|clusterrole|rolebinding|clusterrolebinding|token,
    # kubectl auth can-i|whoami
    "ServiceAccount": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("secrets", "repeated:message:ObjectReference"),
        3: ("imagePullSecrets", "repeated:message:LocalObjectReference"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "ObjectReference": {
        1: ("kind", "string"),
        2: ("namespace", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
    },
    "LocalObjectReference": {1: ("name", "string")},
    "Role": {1: ("metadata", "message:ObjectMeta"), 2: ("rules", "repeated:message:PolicyRule")},
    "ClusterRole": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("rules", "repeated:message:PolicyRule"),
    },
    "PolicyRule": {
        1: ("verbs", "repeated:string"),
        3: ("apiGroups", "repeated:string"),
        4: ("resources", "repeated:string"),
        5: ("resourceNames", "repeated:string"),
        6: ("nonResourceURLs", "repeated:string"),
    },
    "RoleBinding": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("subjects", "repeated:message:Subject"),
        3: ("roleRef", "message:RoleRef"),
    },
    "ClusterRoleBinding": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("subjects", "repeated:message:Subject"),
        3: ("roleRef", "message:RoleRef"),
    },
    "Subject": {
        1: ("kind", "string"),
        2: ("apiGroup", "string"),
        3: ("name", "string"),
        4: ("namespace", "string"),
    },
    "RoleRef": {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")},
    "TokenRequest": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("spec", "message:TokenRequestSpec"),
    },
    "TokenRequestSpec": {
        1: ("audiences", "repeated:string"),
        3: ("boundObjectRef", "message:BoundObjectReference"),
        4: ("expirationSeconds", "int"),
    },
    "BoundObjectReference": {
        1: ("kind", "string"),
        2: ("apiVersion", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
    },
    "SelfSubjectAccessReview": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("spec", "message:SubjectAccessReviewSpec"),
    },
    "SubjectAccessReview": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("spec", "message:SubjectAccessReviewSpec"),
    },
    "LocalSubjectAccessReview": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("spec", "message:SubjectAccessReviewSpec"),
    },
    # SelfSubjectAccessReviewSpec is the first two fields of this one
    "SubjectAccessReviewSpec": {
        1: ("resourceAttributes", "message:ResourceAttributes"),
        2: ("nonResourceAttributes", "message:NonResourceAttributes"),
        3: ("user", "string"),
        4: ("groups", "repeated:string"),
        6: ("uid", "string"),
    },
    "ResourceAttributes": {
        1: ("namespace", "string"),
        2: ("verb", "string"),
        3: ("group", "string"),
        4: ("version", "string"),
        5: ("resource", "string"),
        6: ("subresource", "string"),
        7: ("name", "string"),
    },
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "SelfSubjectRulesReview": {
        1: ("metadata", "message:ObjectMeta"),
        2: ("spec", "message:SelfSubjectRulesReviewSpec"),
    },
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string")},
    "SelfSubjectReview": {1: ("metadata", "message:ObjectMeta")},
    "TokenReview": {1: ("metadata", "message:ObjectMeta"), 2: ("spec", "message:TokenReviewSpec")},
    "TokenReviewSpec": {1: ("token", "string"), 2: ("audiences", "repeated:string")},
}
# the kinds a body may be (the others are parts of them)
_TOP_LEVEL = frozenset(
    {
        "ConfigMap",
        "Secret",
        "Namespace",
        "ServiceAccount",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "TokenRequest",
        "SelfSubjectAccessReview",
        "SubjectAccessReview",
        "LocalSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SelfSubjectReview",
        "TokenReview",
    }
)


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: varints as int, length-delimited as bytes."""
    fields: list[tuple[int, int | bytes]] = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
            fields.append((number, value))
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ProtobufError("truncated field")
            fields.append((number, data[position : position + length]))
            position += length
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return fields


def _decode(data: bytes, message: str) -> dict[str, Any]:
    spec = _MESSAGES[message]
    result: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in spec:
            continue
        name, kind = spec[number]
        if kind in ("int", "bool"):
            if not isinstance(value, int):
                raise ProtobufError(f"{message}.{name}: expected a varint")
            if kind == "bool" or value:
                result[name] = bool(value) if kind == "bool" else value
            continue
        if not isinstance(value, bytes):
            raise ProtobufError(f"{message}.{name}: expected bytes")
        if kind == "raw":
            result[name] = value
        elif kind == "string":
            if value:  # proto2 encodes empty strings; JSON omits them
                result[name] = value.decode()
        elif kind.startswith("message:"):
            result[name] = _decode(value, kind.split(":", 1)[1])
        elif kind.startswith("map:"):
            entry = dict(_fields(value))
            key, item = entry.get(1, b""), entry.get(2, b"")
            if not isinstance(key, bytes) or not isinstance(item, bytes):
                raise ProtobufError(f"{message}.{name}: bad map entry")
            text = base64.b64encode(item).decode() if kind == "map:bytes" else item.decode()
            result.setdefault(name, {})[key.decode()] = text
        elif kind == "repeated:string":
            result.setdefault(name, []).append(value.decode())
        elif kind.startswith("repeated:message:"):
            result.setdefault(name, []).append(_decode(value, kind.split(":", 2)[2]))
    return result


def decode_object(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object of one of the kinds above as a JSON-shaped dict."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = _decode(body[len(MAGIC) :], "Unknown")
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in _TOP_LEVEL:
        raise ProtobufError(
            f"protobuf bodies are only decoded for {', '.join(sorted(_TOP_LEVEL))}, not {kind!r}"
        )
    obj = _decode(envelope.get("raw", b""), kind)
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
