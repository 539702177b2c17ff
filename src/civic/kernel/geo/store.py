"""Spatial stores: layers of keyed points behind one async API, in memory or in PostGIS.

A store is an index over facts a service owns in its own tables (hydrants, facilities): the
service fills a layer at start (`replace_layer`) and keeps it current (`put`, `remove`). In
memory the answer comes from a `FixedIndex` per layer, rebuilt on the first query after a change
of position; in PostgreSQL with PostGIS, from a table shared by every process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from civic.kernel.geo.index import FixedIndex, Hit, Placed, Where
from civic.kernel.geo.points import GeoError, Point
from civic.kernel.geo.shapes import Area

LAYER_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,59}$")
MAX_KEY_LENGTH = 120
Scalar = str | int | float | bool
Match = Mapping[str, Scalar]


def check_layer(layer: str) -> str:
    """Return layer if it is a valid layer name (lower case, digits, `_.-`, at most 60)."""
    if not LAYER_NAME.match(layer):
        raise GeoError(f"layer name {layer!r} must match {LAYER_NAME.pattern}")
    return layer


def check_key(key: str) -> str:
    """Return key if it is a non-empty string of at most 120 characters."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise GeoError(f"a key is a string of 1 to {MAX_KEY_LENGTH} characters, not {key!r}")
    return key


def check_match(match: Match | None) -> Match | None:
    """Refuse match values other than strings, numbers and booleans (they compare as JSON)."""
    if match:
        for name, value in match.items():
            if not isinstance(value, Scalar) or isinstance(value, float) and value != value:
                raise GeoError(f"match value of {name!r} must be a string, number or boolean")
    return match or None


def _same_json(stored: Any, wanted: Scalar) -> bool:
    # JSON tells true from 1: so must the in-memory store, to answer as PostgreSQL's @> does.
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored is wanted
    return bool(stored == wanted)


def matcher(match: Match | None) -> Where | None:
    """Return a predicate true for attributes holding every (name, value) of match."""
    checked = check_match(match)
    if checked is None:
        return None
    wanted = list(checked.items())

    def holds(attributes: Mapping[str, Any]) -> bool:
        return all(n in attributes and _same_json(attributes[n], v) for n, v in wanted)

    return holds


@runtime_checkable
class SpatialStore(Protocol):
    """Layers of keyed points with nearest, radius and area queries (distances in metres)."""

    kind: str

    async def put(self, layer: str, item: Placed) -> None:
        """Add or move one point of a layer."""

    async def put_many(self, layer: str, items: Iterable[Placed]) -> int:
        """Add or move many points of a layer; return how many."""

    async def replace_layer(self, layer: str, items: Iterable[Placed]) -> int:
        """Make items the whole content of a layer; return how many."""

    async def remove(self, layer: str, key: str) -> bool:
        """Remove one point; return whether it was there."""

    async def get(self, layer: str, key: str) -> Placed | None:
        """Return one point of a layer, or None."""

    async def count(self, layer: str) -> int:
        """Return the number of points in a layer."""

    async def nearest(
        self,
        layer: str,
        point: Point,
        *,
        k: int = 1,
        within_m: float | None = None,
        match: Match | None = None,
    ) -> list[Hit]:
        """Return the k points nearest to point, nearest first."""

    async def within_radius(
        self,
        layer: str,
        point: Point,
        radius_m: float,
        *,
        match: Match | None = None,
        limit: int | None = None,
    ) -> list[Hit]:
        """Return the points within radius_m of point, nearest first."""

    async def within_area(
        self, layer: str, area: Area, *, match: Match | None = None
    ) -> list[Placed]:
        """Return the points inside an area (edge included), sorted by key."""


class _Layer:
    def __init__(self) -> None:
        self.items: dict[str, Placed] = {}
        self.index: FixedIndex | None = FixedIndex()

    def fixed(self) -> FixedIndex:
        if self.index is None:
            items = list(self.items.values())
            self.index = FixedIndex.from_arrays(
                [p.key for p in items],
                [p.point.lat for p in items],
                [p.point.lon for p in items],
                [p.attributes for p in items],
            )
        return self.index

    def put(self, item: Placed) -> None:
        old = self.items.get(item.key)
        self.items[item.key] = item
        if self.index is not None and old is not None and old.point == item.point:
            self.index.set_attributes(item.key, item.attributes)
        else:
            self.index = None


class InMemorySpatialStore:
    """A spatial store in this process's memory (the embedded default)."""

    kind = "memory"

    def __init__(self) -> None:
        """Start with no layers."""
        self._layers: dict[str, _Layer] = {}

    def _layer(self, layer: str) -> _Layer:
        found = self._layers.get(layer)
        if found is None:
            found = self._layers[check_layer(layer)] = _Layer()
        return found

    async def put(self, layer: str, item: Placed) -> None:
        """Add or move one point of a layer."""
        self._layer(layer).put(_checked(item))

    async def put_many(self, layer: str, items: Iterable[Placed]) -> int:
        """Add or move many points of a layer; return how many."""
        target = self._layer(layer)
        count = 0
        for item in items:
            target.put(_checked(item))
            count += 1
        return count

    async def replace_layer(self, layer: str, items: Iterable[Placed]) -> int:
        """Make items the whole content of a layer; return how many."""
        fresh = _Layer()
        fresh.items = {item.key: _checked(item) for item in items}
        fresh.index = None
        self._layers[check_layer(layer)] = fresh
        return len(fresh.items)

    async def remove(self, layer: str, key: str) -> bool:
        """Remove one point; return whether it was there."""
        target = self._layer(layer)
        if target.items.pop(key, None) is None:
            return False
        target.index = None
        return True

    async def get(self, layer: str, key: str) -> Placed | None:
        """Return one point of a layer, or None."""
        return self._layer(layer).items.get(key)

    async def count(self, layer: str) -> int:
        """Return the number of points in a layer."""
        return len(self._layer(layer).items)

    async def nearest(
        self,
        layer: str,
        point: Point,
        *,
        k: int = 1,
        within_m: float | None = None,
        match: Match | None = None,
    ) -> list[Hit]:
        """Return the k points nearest to point, nearest first."""
        return self._layer(layer).fixed().nearest(point, k, within_m=within_m, where=matcher(match))

    async def within_radius(
        self,
        layer: str,
        point: Point,
        radius_m: float,
        *,
        match: Match | None = None,
        limit: int | None = None,
    ) -> list[Hit]:
        """Return the points within radius_m of point, nearest first."""
        index = self._layer(layer).fixed()
        return index.within_radius(point, radius_m, where=matcher(match), limit=limit)

    async def within_area(
        self, layer: str, area: Area, *, match: Match | None = None
    ) -> list[Placed]:
        """Return the points inside an area (edge included), sorted by key."""
        return self._layer(layer).fixed().within_area(area, where=matcher(match))


def _checked(item: Placed) -> Placed:
    check_key(item.key)
    if not isinstance(item.point, Point):
        raise GeoError(f"the point of {item.key!r} is not a Point")
    return item
