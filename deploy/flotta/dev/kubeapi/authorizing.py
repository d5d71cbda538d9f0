"""Who is asking, and whether they may: authentication, impersonation, RBAC and the audit log
for every request, and the endpoints that are answered rather than stored (TokenRequest and
the reviews). The HTTP side of ``authn``, ``request_info``, ``rbac`` and ``access_reviews``.

The admin token (the kubeconfig ``flotta dev kube-api`` writes) is the user
``kubernetes-admin`` in ``system:masters``: allowed everything, as on a cluster. A
service-account token is its account's user, and RBAC decides each of its requests from the
stored Roles, ClusterRoles and their bindings (with the bootstrap ones, ``rbac_bootstrap``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from flotta.dev.kubeapi.access_reviews import KINDS, impersonated, review
from flotta.dev.kubeapi.api import Api
from flotta.dev.kubeapi.auditing import AuditLog, audit_event
from flotta.dev.kubeapi.authn import ADMIN, API_AUDIENCES, Authenticator
from flotta.dev.kubeapi.errors import (
    BadRequestError,
    ForbiddenError,
    MethodNotAllowedError,
    UnauthorizedError,
)
from flotta.dev.kubeapi.rbac import (
    GROUP,
    Attributes,
    Decision,
    Policy,
    UserInfo,
    forbidden_message,
    service_account_of,
    service_account_user,
)
from flotta.dev.kubeapi.rbac_bootstrap import ensure_bootstrap
from flotta.dev.kubeapi.request_info import request_attributes
from flotta.dev.kubeapi.service_accounts import issue_token

logger = logging.getLogger(__name__)

ATTRIBUTES = web.RequestKey("flotta.attributes", Attributes)
_DECISION = web.RequestKey("flotta.decision", Decision)
_RECEIVED = web.RequestKey("flotta.received", float)
_KEYS = {
    plural: f"{GROUP}/{plural}"
    for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
}


class Gate:
    """Admits or refuses each request; serves TokenRequest and the reviews."""

    def __init__(
        self, api: Api, authenticator: Authenticator, *, audit_log: Path | None = None
    ) -> None:
        self.api = api
        self.authenticator = authenticator
        self._audit = AuditLog(audit_log) if audit_log is not None else None
        self._policy = Policy()
        self._signature: tuple[tuple[int, int], ...] = ()
        self._read_body: Callable[[web.Request], Awaitable[Any]] = self._json_body
        ensure_bootstrap(api)

    def close(self) -> None:
        if self._audit is not None:
            self._audit.close()

    # ---- decisions -----------------------------------------------------------------------

    def _objects(self, plural: str) -> Iterator[dict[str, Any]]:
        for _, entry in self.api.storage.items(_KEYS[plural]):
            yield entry.load()

    def policy(self) -> Policy:
        """The stored roles and bindings, re-read when one of them changed."""
        signature = tuple(
            (len(items), max((entry.resource_version for _, entry in items), default=0))
            for items in (self.api.storage.items(key) for key in _KEYS.values())
        )
        if signature != self._signature:
            self._policy = Policy(
                self._objects("roles"),
                self._objects("clusterroles"),
                self._objects("rolebindings"),
                self._objects("clusterrolebindings"),
            )
            self._signature = signature
        return self._policy

    def decide(self, attributes: Attributes) -> Decision:
        if attributes.user.privileged:
            return Decision(True)
        return self.policy().authorize(attributes)

    def require(self, attributes: Attributes) -> Decision:
        """The decision, or ForbiddenError with kube-apiserver's message."""
        decision = self.decide(attributes)
        if not decision.allowed:
            if attributes.resource_request:
                group, resource, name = attributes.api_group, attributes.resource, attributes.name
            else:
                group, resource, name = "", "", ""
            raise ForbiddenError(
                forbidden_message(attributes, decision.reason),
                name=name,
                group=group,
                kind=resource,
            )
        return decision

    def _impersonate(self, request: web.Request, user: UserInfo) -> UserInfo:
        name = request.headers.get("Impersonate-User", "")
        groups = tuple(request.headers.getall("Impersonate-Group", []))
        uid = request.headers.get("Impersonate-Uid", "")
        if not name:
            if groups or uid:
                raise BadRequestError("impersonating groups or a uid needs Impersonate-User")
            return user
        account = service_account_of(name)
        wanted = [
            Attributes(
                user,
                "impersonate",
                namespace=account[0],
                resource="serviceaccounts",
                name=account[1],
            )
            if account is not None
            else Attributes(user, "impersonate", resource="users", name=name)
        ]
        wanted += [Attributes(user, "impersonate", resource="groups", name=g) for g in groups]
        if uid:
            wanted.append(
                Attributes(
                    user,
                    "impersonate",
                    api_group="authentication.k8s.io",
                    resource="uids",
                    name=uid,
                )
            )
        for attributes in wanted:
            self.require(attributes)
        return impersonated(name, groups, uid)

    def admit(self, request: web.Request) -> Attributes:
        """Authenticate and authorize a request (raises 401 or 403)."""
        request[_RECEIVED] = time.time()
        user = self.authenticator.authenticate(request.headers.get("Authorization", ""))
        if user is None:
            raise UnauthorizedError("Unauthorized")
        user = self._impersonate(request, user)
        attributes = request_attributes(user, request.method, request.path, request.query)
        request[ATTRIBUTES] = attributes
        try:
            request[_DECISION] = self.require(attributes)
        except ForbiddenError:
            request[_DECISION] = Decision(False)
            raise
        if attributes.verb == "watch":
            self.audit(request, 200, stage="ResponseStarted")
        return attributes

    def require_create(self, request: web.Request) -> None:
        """An apply that creates its object also needs ``create`` (as in kube-apiserver)."""
        attributes = request.get(ATTRIBUTES)
        if attributes is None:
            return
        created = Attributes(
            attributes.user,
            "create",
            path=attributes.path,
            namespace=attributes.namespace,
            api_group=attributes.api_group,
            api_version=attributes.api_version,
            resource=attributes.resource,
            subresource=attributes.subresource,
            name=attributes.name,
        )
        self.require(created)

    def audit(self, request: web.Request, code: int, *, stage: str = "ResponseComplete") -> None:
        attributes = request.get(ATTRIBUTES)
        if self._audit is None or attributes is None:
            return
        decision = request.get(_DECISION, Decision(False))
        self._audit.write(
            audit_event(
                request,
                attributes,
                decision,
                code,
                stage=stage,
                received=request.get(_RECEIVED, time.time()),
            )
        )

    # ---- endpoints -----------------------------------------------------------------------

    def routes(
        self, app: web.Application, *, read_body: Callable[[web.Request], Awaitable[Any]]
    ) -> None:
        """``read_body``: the request body as the other endpoints read it (JSON, YAML, and
        protobuf, which kubectl sends for these kinds)."""
        self._read_body = read_body
        app.router.add_route(
            "*", "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", self.token
        )
        for plural, (group, _, namespaced) in KINDS.items():
            scope = "namespaces/{namespace}/" if namespaced else ""
            app.router.add_route("*", f"/apis/{group}/v1/{scope}{plural}", self.review)

    @staticmethod
    async def _json_body(request: web.Request) -> Any:
        text = await request.text()
        try:
            return json.loads(text) if text.strip() else None
        except ValueError as exc:
            raise BadRequestError(f"the request body is not valid JSON: {exc}") from exc

    @staticmethod
    def _post_only(request: web.Request) -> None:
        if request.method != "POST":
            raise MethodNotAllowedError(
                "the server does not allow this method on the requested resource"
                f" ({request.method})"
            )

    async def token(self, request: web.Request) -> web.Response:
        self._post_only(request)
        accounts = self.api.registry.lookup("", "v1", "serviceaccounts")
        assert accounts is not None
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        account = self.api.get(accounts, namespace, name).load()
        answer = issue_token(
            await self._read_body(request),
            account,
            self.authenticator.key.signing(),
            now=time.time(),
        )
        return web.json_response(answer, status=201)

    def _token_user(
        self, token: str, audiences: tuple[str, ...]
    ) -> tuple[UserInfo, tuple[str, ...]] | None:
        if self.authenticator.authenticate(f"Bearer {token}") is ADMIN and not audiences:
            return ADMIN, API_AUDIENCES
        found = self.authenticator.review(token, audiences or API_AUDIENCES)
        if found is None:
            return None
        accepted = tuple(a for a in found.audiences if a in (audiences or API_AUDIENCES))
        return service_account_user(found.namespace, found.name, found.uid), accepted

    async def review(self, request: web.Request) -> web.Response:
        self._post_only(request)
        attributes = request[ATTRIBUTES]
        answer = review(
            attributes.resource,
            await self._read_body(request),
            user=attributes.user,
            policy=self.policy(),
            namespace=request.match_info.get("namespace", ""),
            token_user=self._token_user,
        )
        return web.json_response(answer, status=201)
