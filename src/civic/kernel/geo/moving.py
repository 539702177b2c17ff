"""An in-memory index of moving points: O(1) updates in a grid of cells, nearest k and radius.

Each key sits in one cell of a latitude/longitude grid (0.01° by default, about 1.1 km by 0.9 km
in Korea). A move that stays in its cell only rewrites the key's entry; one that crosses a border
moves the key between two sets. Queries visit the cells around the query point and measure the
points there exactly, so answers equal a brute-force scan. Longitudes wrap at the antimeridian.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping
from typing import Any

from civic.kernel.geo.index import NO_ATTRIBUTES, Hit, Placed, Where, check_radius
from civic.kernel.geo.points import (
    EARTH_RADIUS_M,
    BoundingBox,
    GeoError,
    Point,
    haversine_m,
    trusted_point,
)

Cell = tuple[int, int]
_Entry = tuple[float, float, Cell, Mapping[str, Any]]


class MovingIndex:
    """Positions of things that move (units, responders, watches), updated very often."""

    def __init__(self, *, cell_deg: float = 0.01) -> None:
        """Use square cells of cell_deg degrees (a divisor of 360 keeps the wrap exact)."""
        if not 0.0001 <= cell_deg <= 10:
            raise GeoError(f"cell size must be between 0.0001 and 10 degrees, not {cell_deg}")
        self._cell = cell_deg
        self._columns = max(1, round(360.0 / cell_deg))
        self._entries: dict[str, _Entry] = {}
        self._cells: dict[Cell, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def _cell_of(self, lat: float, lon: float) -> Cell:
        return (math.floor(lat / self._cell), math.floor(lon / self._cell) % self._columns)

    def move(
        self, key: str, lat: float, lon: float, attributes: Mapping[str, Any] | None = None
    ) -> None:
        """Put key at (lat, lon); attributes replace the old ones when given, else they stay."""
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            Point(lat, lon)  # raises the message that says what is wrong (NaN, range, swap)
        cell = self._cell_of(lat, lon)
        entry = self._entries.get(key)
        if entry is None:
            self._cells.setdefault(cell, set()).add(key)
            kept = NO_ATTRIBUTES
        else:
            kept = entry[3]
            if entry[2] != cell:
                self._leave(key, entry[2])
                self._cells.setdefault(cell, set()).add(key)
        self._entries[key] = (lat, lon, cell, kept if attributes is None else attributes)

    def update(self, key: str, point: Point, attributes: Mapping[str, Any] | None = None) -> None:
        """Put key at point (see `move`)."""
        self.move(key, point.lat, point.lon, attributes)

    def remove(self, key: str) -> bool:
        """Forget key; return whether it was there."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._leave(key, entry[2])
        return True

    def _leave(self, key: str, cell: Cell) -> None:
        members = self._cells[cell]
        members.discard(key)
        if not members:
            del self._cells[cell]

    def get(self, key: str) -> Placed | None:
        """Return where key is now, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        return Placed(key, trusted_point(entry[0], entry[1]), entry[3])

    def items(self) -> Iterator[Placed]:
        """Every key with its position."""
        for key, (lat, lon, _cell, attributes) in self._entries.items():
            yield Placed(key, trusted_point(lat, lon), attributes)

    def within_radius(
        self,
        point: Point,
        radius_m: float,
        *,
        where: Where | None = None,
        limit: int | None = None,
    ) -> list[Hit]:
        """Every key within radius_m metres of point (passing where), nearest first."""
        radius = check_radius(radius_m)
        found: list[tuple[float, str]] = []
        for key in self._keys_near(point, radius):
            lat, lon, _cell, attributes = self._entries[key]
            distance = haversine_m(point, trusted_point(lat, lon))
            if distance <= radius and (where is None or where(attributes)):
                found.append((distance, key))
        found.sort()
        return [self._hit(key, distance) for distance, key in found[:limit]]

    def _keys_near(self, point: Point, radius_m: float) -> Iterator[str]:
        box = BoundingBox.around(point, radius_m)
        rows = range(math.floor(box.south / self._cell), math.floor(box.north / self._cell) + 1)
        east = box.east if box.west <= box.east else box.east + 360.0
        first = math.floor(box.west / self._cell)
        columns = range(first, max(first, math.floor(east / self._cell)) + 1)
        if len(rows) * len(columns) > len(self._cells):
            yield from list(self._entries)
            return
        seen: set[int] = set()
        for column in columns:
            wrapped = column % self._columns
            if wrapped in seen:
                continue
            seen.add(wrapped)
            for row in rows:
                members = self._cells.get((row, wrapped))
                if members:
                    yield from members

    def nearest(
        self, point: Point, k: int = 1, *, within_m: float | None = None, where: Where | None = None
    ) -> list[Hit]:
        """Return the k keys nearest to point (within within_m, passing where), nearest first."""
        if k < 1:
            raise GeoError(f"k must be at least 1, not {k}")
        limit = check_radius(within_m) if within_m is not None else math.inf
        row0 = math.floor(point.lat / self._cell)
        column0 = math.floor(point.lon / self._cell)
        best: list[tuple[float, str]] = []  # a max-heap of the k nearest, as (-distance, key)
        ring = 0
        while True:
            if (2 * ring + 1) ** 2 > len(self._cells):
                best.clear()  # cheaper to measure everything once than to search more rings
                self._consider(point, self._entries, best, k, limit, where)
                break
            self._consider(point, self._ring(row0, column0, ring), best, k, limit, where)
            safe = self._searched_radius(point, row0, column0, ring)
            kth = -best[0][0] if len(best) == k else math.inf
            if safe >= min(kth, limit):
                break
            ring += 1
        ordered = sorted((-negative, key) for negative, key in best)
        return [self._hit(key, distance) for distance, key in ordered]

    def _ring(self, row0: int, column0: int, ring: int) -> Iterator[str]:
        for row in range(row0 - ring, row0 + ring + 1):
            edge = row in (row0 - ring, row0 + ring)
            step = 1 if edge else 2 * ring
            for column in range(column0 - ring, column0 + ring + 1, max(step, 1)):
                members = self._cells.get((row, column % self._columns))
                if members:
                    yield from members

    def _consider(
        self,
        point: Point,
        keys: Any,
        best: list[tuple[float, str]],
        k: int,
        limit: float,
        where: Where | None,
    ) -> None:
        for key in keys:
            lat, lon, _cell, attributes = self._entries[key]
            distance = haversine_m(point, trusted_point(lat, lon))
            if distance > limit or (where is not None and not where(attributes)):
                continue
            item = (-distance, key)
            if len(best) < k:
                heapq.heappush(best, item)
            elif item > best[0]:
                heapq.heapreplace(best, item)

    def _searched_radius(self, point: Point, row0: int, column0: int, ring: int) -> float:
        """Return a distance within which every point lies in the cells searched so far."""
        south = (row0 - ring) * self._cell
        north = (row0 + ring + 1) * self._cell
        west = (column0 - ring) * self._cell
        east = (column0 + ring + 1) * self._cell
        dlat = min(point.lat - south, north - point.lat)
        dlon = min(point.lon - west, east - point.lon)
        by_latitude = math.radians(dlat) * EARTH_RADIUS_M
        widest = max(abs(south), abs(north))
        if widest >= 90.0:
            return 0.0  # a square touching a pole holds no longitude guarantee: search on
        # haversine: h >= cos²(φmax)·sin²(Δλ/2), so d >= 2R·asin(cos φmax · sin(Δλ/2)).
        by_longitude = (
            2
            * EARTH_RADIUS_M
            * math.asin(math.cos(math.radians(widest)) * math.sin(math.radians(dlon) / 2))
        )
        return min(by_latitude, by_longitude)

    def _hit(self, key: str, distance: float) -> Hit:
        lat, lon, _cell, attributes = self._entries[key]
        return Hit(key, trusted_point(lat, lon), distance, attributes)
