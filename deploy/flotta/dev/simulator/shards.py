"""Split a fleet over several simulator processes (one asyncio loop each)."""

from __future__ import annotations


class ShardError(ValueError):
    """A shard number outside 0..shards-1, or fewer than one shard."""


def device_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(count)]


def shard_of(ids: list[str], shard: int, shards: int) -> list[str]:
    """Every ``shards``-th id starting at ``shard``: slices of equal size (within one)."""
    if shards < 1:
        raise ShardError(f"at least one shard is needed, not {shards}")
    if not 0 <= shard < shards:
        raise ShardError(f"shard {shard} is not in 0..{shards - 1}")
    return ids[shard::shards]
