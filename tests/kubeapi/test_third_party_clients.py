"""Contract: Kubernetes clients the project did not write (kr8s, lightkube) connect, read,
write and apply server-side, against the local API or, with --real-cluster, a real one."""

from __future__ import annotations

import uuid
from typing import Any

import kr8s.asyncio
from kr8s.asyncio.objects import APIObject
from lightkube import AsyncClient, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace


def _kr8s_object(found: APIObject | dict[str, Any]) -> APIObject:
    """kr8s answers plain dicts only when asked for raw=True."""
    assert isinstance(found, APIObject)
    return found


def _metadata(found: Namespace | ConfigMap) -> ObjectMeta:
    assert found.metadata is not None
    return found.metadata


async def test_kr8s_connects_lists_and_writes(kube: Any, kube_namespace: str) -> None:
    # kr8s requests /version/, /api/ and /apis/ with the trailing slash when it starts.
    api = await kr8s.asyncio.api(kubeconfig=str(kube.kubeconfig), context=kube.context)
    version = await api.version()
    assert version["major"] == "1"
    namespaces = [_kr8s_object(ns).name async for ns in api.async_get("namespaces")]
    assert kube_namespace in namespaces
    name = f"kr8s-{uuid.uuid4().hex[:6]}"
    config_map = await kr8s.asyncio.objects.ConfigMap(
        {"metadata": {"name": name, "namespace": kube_namespace}, "data": {"a": "1"}}, api=api
    )
    await config_map.create()
    await config_map.patch({"data": {"a": "2"}})
    found = [cm async for cm in api.async_get("configmaps", name, namespace=kube_namespace)]
    assert [_kr8s_object(cm).raw["data"] for cm in found] == [{"a": "2"}]
    await config_map.delete()


async def test_lightkube_lists_creates_and_applies_server_side(
    kube: Any, kube_namespace: str
) -> None:
    config = KubeConfig.from_file(str(kube.kubeconfig)).get(context_name=kube.context)
    client = AsyncClient(config=config, field_manager="lightkube-test")
    try:
        names = [_metadata(ns).name async for ns in client.list(Namespace)]
        assert kube_namespace in names
        name = f"lk-{uuid.uuid4().hex[:6]}"
        meta = ObjectMeta(name=name, namespace=kube_namespace)
        await client.apply(ConfigMap(metadata=meta, data={"k": "v1"}))
        await client.apply(ConfigMap(metadata=meta, data={"k": "v2", "j": "w"}))
        got = await client.get(ConfigMap, name, namespace=kube_namespace)
        assert got.data == {"k": "v2", "j": "w"}
        managers = [entry.manager for entry in _metadata(got).managedFields or []]
        assert "lightkube-test" in managers
        await client.delete(ConfigMap, name, namespace=kube_namespace)
    finally:
        await client.close()
