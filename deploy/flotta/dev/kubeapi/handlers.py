"""HTTP handlers (aiohttp): routing of Kubernetes REST paths onto ``Api`` operations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from flotta.dev.kubeapi import discovery, openapi, streaming, tables
from flotta.dev.kubeapi.api import Api
from flotta.dev.kubeapi.applying import manager_from_user_agent
from flotta.dev.kubeapi.authorizing import Gate
from flotta.dev.kubeapi.errors import (
    ApiError,
    BadRequestError,
    Cause,
    GoneError,
    InvalidError,
    MethodNotAllowedError,
    NotFoundError,
    UnsupportedMediaTypeError,
    success_status,
)
from flotta.dev.kubeapi.patches import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from flotta.dev.kubeapi.protobuf import ProtobufError, decode_object
from flotta.dev.kubeapi.resources import ResourceType
from flotta.dev.kubeapi.selectors import SelectorError, parse_field_selector, parse_label_selector
from flotta.dev.kubeapi.storage import Entry
from flotta.dev.kubeapi.streaming import WatchOptions
from flotta.dev.kubeapi.watching import error_line

logger = logging.getLogger(__name__)

TABLE_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
APPLY_PATCH = "application/apply-patch+yaml"
_ANONYMOUS = ("/healthz", "/livez", "/readyz", "/version", "/version/")


@dataclass(frozen=True)
class Settings:
    server_address: str
    bookmark_interval: float = 60.0
    watch_batch: int = 256


@dataclass(frozen=True)
class Target:
    """What a resource path names."""

    resource: ResourceType
    namespace: str | None  # None: all namespaces (list/watch) or cluster-scoped
    name: str
    subresource: str


def _json(body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    payload = json.dumps(body, separators=(",", ":")).encode()
    return web.Response(body=payload, status=status, headers={"Content-Type": content_type})


def _raw(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json")


def _with_warnings(response: web.Response, warnings: list[str] | None) -> web.Response:
    for warning in warnings or ():
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


def _error(error: ApiError) -> web.Response:
    return _json(error.status(), error.code)


def _dry_run(values: list[Any], options_kind: str) -> bool:
    """Whether a write is a dry run (``dryRun=All``); other values are refused as in Kubernetes."""
    if any(value != "All" for value in values):
        quoted = ", ".join(json.dumps(str(value)) for value in values)
        message = f'Unsupported value: []string{{{quoted}}}: supported values: "All"'
        raise InvalidError(
            f'{options_kind}.meta.k8s.io "" is invalid: dryRun: {message}',
            group="meta.k8s.io",
            kind=options_kind,
            causes=(Cause("FieldValueNotSupported", message, "dryRun"),),
        )
    return bool(values)


def _invalid_options(options_kind: str, cause: Cause) -> InvalidError:
    return InvalidError(
        f'{options_kind}.meta.k8s.io "" is invalid: {cause.field}: {cause.message}',
        group="meta.k8s.io",
        kind=options_kind,
        causes=(cause,),
    )


def _manager(request: web.Request) -> str:
    """The fieldManager of a plain write: given, or derived from the user agent."""
    return request.query.get("fieldManager") or manager_from_user_agent(
        request.headers.get("User-Agent", "")
    )


def _wants_table(request: web.Request) -> bool:
    for part in request.headers.get("Accept", "").split(","):
        params = {p.strip() for p in part.split(";")}
        if "as=Table" in params and "g=meta.k8s.io" in params:
            return True
    return False


class Handlers:
    """The aiohttp application's request handlers over one ``Api``."""

    def __init__(self, api: Api, settings: Settings, gate: Gate) -> None:
        self.api = api
        self.settings = settings
        self.gate = gate
        # transports seen, so that shutdown can abort TLS connections still closing
        self.transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    def abort_connections(self) -> None:
        for transport in list(self.transports):
            if isinstance(transport, asyncio.Transport):
                transport.abort()

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._middleware)
        # TokenRequest and the reviews, before the generic routes
        self.gate.routes(app, read_body=self._body)
        # kube-apiserver answers the discovery roots with or without a trailing slash
        for path in ("/version", "/version/"):
            app.router.add_get(path, self.version)
        for path in ("/healthz", "/livez", "/readyz"):
            app.router.add_get(path, self.health)
        app.router.add_get("/openapi/v3", self.openapi_root)
        app.router.add_get("/openapi/v3/api/{version}", self.openapi_group_version)
        app.router.add_get("/openapi/v3/apis/{group}/{version}", self.openapi_group_version)
        for path in ("/api", "/api/"):
            app.router.add_get(path, self.api_versions)
        for path in ("/apis", "/apis/"):
            app.router.add_get(path, self.api_groups)
        app.router.add_route("*", "/api/{version}", self.group_version)
        app.router.add_route("*", "/api/{version}/{tail:.+}", self.resource)
        app.router.add_get("/apis/{group}", self.api_group)
        app.router.add_route("*", "/apis/{group}/{version}", self.group_version)
        app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", self.resource)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.transport is not None:
            self.transports.add(request.transport)
        response: web.StreamResponse
        try:
            if request.path not in _ANONYMOUS:
                self.gate.admit(request)
            response = await handler(request)
        except ApiError as error:
            response = _error(error)
        except web.HTTPNotFound:
            response = _error(NotFoundError("the server could not find the requested resource"))
        except web.HTTPException:
            raise
        except Exception as exc:
            logger.exception("internal error serving %s %s", request.method, request.path)
            response = _error(ApiError(f"an internal error occurred: {exc}"))
        self.gate.audit(request, response.status)
        return response

    async def version(self, _: web.Request) -> web.Response:
        return _json(discovery.VERSION_INFO)

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def openapi_root(self, _: web.Request) -> web.Response:
        return _json(openapi.root_document(self.api.registry))

    async def openapi_group_version(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        body = openapi.group_version_document(
            self.api.registry, group, request.match_info["version"]
        )
        if body is None:
            raise NotFoundError("the server could not find the requested resource")
        return _json(body)

    async def api_versions(self, _: web.Request) -> web.Response:
        return _json(discovery.api_versions(self.settings.server_address))

    async def api_groups(self, _: web.Request) -> web.Response:
        return _json(discovery.api_group_list(self.api.registry))

    async def api_group(self, request: web.Request) -> web.Response:
        body = discovery.api_group(self.api.registry, request.match_info["group"])
        if body is None:
            raise NotFoundError("the server could not find the requested resource")
        return _json(body)

    async def group_version(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        body = discovery.api_resource_list(self.api.registry, group, request.match_info["version"])
        if body is None or request.method != "GET":
            raise NotFoundError("the server could not find the requested resource")
        return _json(body)

    # ---- resources ---------------------------------------------------------------------

    def _target(self, request: web.Request) -> Target:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        parts = request.match_info["tail"].strip("/").split("/")
        namespace: str | None = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            candidate = self.api.registry.lookup(group, version, parts[2])
            if candidate is not None and candidate.namespaced:
                namespace, parts = parts[1], parts[2:]
        resource = self.api.registry.lookup(group, version, parts[0])
        if resource is None or len(parts) > 3:
            raise NotFoundError("the server could not find the requested resource")
        if resource.namespaced and namespace is None and len(parts) > 1:
            raise NotFoundError("the server could not find the requested resource")
        name = parts[1] if len(parts) > 1 else ""
        subresource = parts[2] if len(parts) > 2 else ""
        if subresource and subresource != "status":
            raise NotFoundError("the server could not find the requested resource")
        if subresource and not resource.status_subresource:
            raise NotFoundError("the server could not find the requested resource")
        return Target(resource, namespace, name, subresource)

    async def resource(self, request: web.Request) -> web.StreamResponse:
        target = self._target(request)
        method = request.method
        if not target.name:
            if method == "GET":
                if request.query.get("watch") in ("1", "true"):
                    return await self._watch(request, target)
                return self._list(request, target)
            if method == "POST":
                return await self._create(request, target)
            if method == "DELETE":
                return self._delete_collection(request, target)
            raise MethodNotAllowedError(
                f"the server does not allow this method on the requested resource ({method})"
            )
        namespace = target.namespace or ""
        if method == "GET":
            return self._one(
                request, target.resource, self.api.get(target.resource, namespace, target.name)
            )
        if method == "PUT":
            entry = self.api.replace(
                target.resource,
                namespace,
                target.name,
                await self._body(request),
                subresource=target.subresource,
                strict=self._strict(request),
                warnings=(warnings := self._warnings(request)),
                dry_run=_dry_run(request.query.getall("dryRun", []), "UpdateOptions"),
                manager=_manager(request),
            )
            return _with_warnings(self._one(request, target.resource, entry), warnings)
        if method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH):
                raise UnsupportedMediaTypeError(
                    "the body of the request was in an unknown format - accepted media types"
                    " include: application/json-patch+json, application/merge-patch+json,"
                    " application/apply-patch+yaml, application/strategic-merge-patch+json"
                )
            if content_type == APPLY_PATCH:
                return await self._apply(request, target, namespace)
            if "force" in request.query:
                raise _invalid_options(
                    "PatchOptions",
                    Cause(
                        "FieldValueForbidden",
                        "Forbidden: may not be specified for non-apply patch",
                        "force",
                    ),
                )
            entry = self.api.patch(
                target.resource,
                namespace,
                target.name,
                await self._body(request),
                content_type,
                subresource=target.subresource,
                strict=self._strict(request),
                warnings=(warnings := self._warnings(request)),
                dry_run=_dry_run(request.query.getall("dryRun", []), "PatchOptions"),
                manager=_manager(request),
            )
            return _with_warnings(self._one(request, target.resource, entry), warnings)
        if method == "DELETE":
            return await self._delete(request, target, namespace)
        raise MethodNotAllowedError(
            f"the server does not allow this method on the requested resource ({method})"
        )

    @staticmethod
    def _strict(request: web.Request) -> bool:
        return request.query.get("fieldValidation", "") == "Strict"

    @staticmethod
    def _warnings(request: web.Request) -> list[str] | None:
        """A list to collect warnings in, unless the client asked to ignore unknown fields."""
        return None if request.query.get("fieldValidation", "") == "Ignore" else []

    @staticmethod
    async def _body(request: web.Request) -> Any:
        content_type = request.headers.get("Content-Type", "")
        if "protobuf" in content_type:
            try:
                return decode_object(await request.read())
            except ProtobufError as exc:
                raise UnsupportedMediaTypeError(
                    f"the body of the request was in an unknown format ({content_type}): {exc}"
                    " - accepted media types include: application/json, application/yaml"
                ) from exc
        if "cbor" in content_type:
            raise UnsupportedMediaTypeError(
                f"the body of the request was in an unknown format ({content_type})"
                " - accepted media types include: application/json, application/yaml"
            )
        text = await request.text()
        if not text.strip():
            return None
        try:
            if "yaml" in request.headers.get("Content-Type", ""):
                return yaml.safe_load(text)
            return json.loads(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise BadRequestError(f"the request body is not valid JSON: {exc}") from exc

    def _one(
        self, request: web.Request, resource: ResourceType, entry: Entry, status: int = 200
    ) -> web.Response:
        if _wants_table(request):
            body = tables.table(
                resource,
                [entry.load()],
                resource_version=str(entry.resource_version),
                include_object=request.query.get("includeObject", "Metadata"),
            )
            return _json(body, status, TABLE_TYPE)
        return _raw(entry.raw, status)

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        if target.resource.namespaced and target.namespace is None:
            raise MethodNotAllowedError("create needs a namespace in the path")
        entry = self.api.create(
            target.resource,
            target.namespace or "",
            await self._body(request),
            strict=self._strict(request),
            warnings=(warnings := self._warnings(request)),
            dry_run=_dry_run(request.query.getall("dryRun", []), "CreateOptions"),
            manager=_manager(request),
        )
        return _with_warnings(self._one(request, target.resource, entry, 201), warnings)

    async def _apply(self, request: web.Request, target: Target, namespace: str) -> web.Response:
        manager = request.query.get("fieldManager", "")
        if not manager:
            raise _invalid_options(
                "PatchOptions",
                Cause(
                    "FieldValueRequired",
                    "Required value: is required for apply patch",
                    "fieldManager",
                ),
            )
        dry_run = _dry_run(request.query.getall("dryRun", []), "PatchOptions")
        if self.api.storage.get(target.resource.key, namespace, target.name) is None:
            self.gate.require_create(request)
        entry, created = self.api.apply(
            target.resource,
            namespace,
            target.name,
            await self._body(request),
            manager=manager,
            force=request.query.get("force", "").lower() in ("true", "1"),
            subresource=target.subresource,
            strict=self._strict(request),
            warnings=(warnings := self._warnings(request)),
            dry_run=dry_run,
        )
        response = self._one(request, target.resource, entry, 201 if created else 200)
        return _with_warnings(response, warnings)

    def _selectors(self, request: web.Request, target: Target) -> tuple[Any, Any]:
        try:
            labels = parse_label_selector(request.query.get("labelSelector"))
            fields = parse_field_selector(
                request.query.get("fieldSelector"), target.resource.field_selectors
            )
        except SelectorError as exc:
            raise BadRequestError(str(exc)) from exc
        return labels, fields

    def _list(self, request: web.Request, target: Target) -> web.Response:
        labels, fields = self._selectors(request, target)
        try:
            limit = int(request.query.get("limit", "0") or 0)
        except ValueError as exc:
            raise BadRequestError("limit must be an integer") from exc
        result = self.api.list(
            target.resource,
            target.namespace,
            labels,
            fields,
            limit=limit,
            continue_token=request.query.get("continue", ""),
        )
        if _wants_table(request):
            body = tables.table(
                target.resource,
                [entry.load() for entry in result.items],
                resource_version=str(result.resource_version),
                include_object=request.query.get("includeObject", "Metadata"),
                continue_token=result.continue_token,
            )
            return _json(body, 200, TABLE_TYPE)
        metadata: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            metadata["continue"] = result.continue_token
            metadata["remainingItemCount"] = result.remaining
        head = json.dumps(
            {
                "apiVersion": target.resource.api_version,
                "kind": target.resource.list_kind,
                "metadata": metadata,
            },
            separators=(",", ":"),
        )
        return _raw(head[:-1] + ',"items":[' + ",".join(entry.raw for entry in result.items) + "]}")

    def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        labels, fields = self._selectors(request, target)
        dry_run = _dry_run(request.query.getall("dryRun", []), "DeleteOptions")
        result = self.api.list(target.resource, target.namespace, labels, fields)
        for entry in result.items:
            meta = entry.load()["metadata"]
            with contextlib.suppress(NotFoundError):
                self.api.delete(
                    target.resource, meta.get("namespace", ""), meta["name"], dry_run=dry_run
                )
        body = {
            "apiVersion": target.resource.api_version,
            "kind": target.resource.list_kind,
            "metadata": {"resourceVersion": str(self.api.storage.resource_version)},
            "items": [],
        }
        return _json(body)

    async def _delete(self, request: web.Request, target: Target, namespace: str) -> web.Response:
        options = await self._body(request) or {}
        if not isinstance(options, dict):
            options = {}
        preconditions = options.get("preconditions") or {}
        given = options.get("dryRun") or []  # DeleteOptions carry it in the body too
        entry, gone = self.api.delete(
            target.resource,
            namespace,
            target.name,
            precondition_uid=str(preconditions.get("uid") or ""),
            precondition_version=str(preconditions.get("resourceVersion") or ""),
            dry_run=_dry_run([*request.query.getall("dryRun", []), *given], "DeleteOptions"),
        )
        if not gone:
            return self._one(request, target.resource, entry)
        meta = entry.load()["metadata"]
        return _json(
            success_status(
                name=target.name,
                group=target.resource.group,
                kind=target.resource.plural,
                uid=meta["uid"],
            )
        )

    # ---- watch -------------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        labels, fields = self._selectors(request, target)
        as_table = _wants_table(request)
        include_object = request.query.get("includeObject", "Metadata")
        bookmarks = request.query.get("allowWatchBookmarks") in ("1", "true")
        try:
            timeout = float(request.query.get("timeoutSeconds", "0") or 0)
        except ValueError as exc:
            raise BadRequestError("timeoutSeconds must be a number") from exc
        response = web.StreamResponse(
            headers={"Content-Type": TABLE_TYPE if as_table else "application/json"}
        )
        response.enable_chunked_encoding()
        try:
            start = self.api.watch(
                target.resource,
                target.namespace,
                labels,
                fields,
                request.query.get("resourceVersion", ""),
            )
        except GoneError as error:
            await response.prepare(request)
            await response.write(error_line(error.status()))
            return response
        options = WatchOptions(
            as_table=as_table,
            include_object=include_object,
            bookmarks=bookmarks,
            timeout=timeout,
            bookmark_interval=self.settings.bookmark_interval,
            batch=self.settings.watch_batch,
        )
        try:
            await streaming.stream(
                request,
                response,
                target.resource,
                start,
                options,
                lambda: self.api.storage.resource_version,
            )
        except ConnectionResetError:
            logger.debug("watch client went away")
        finally:
            self.api.hub.remove(start.watcher)
        return response
