"""An in-memory index of fixed points: nearest k, within a radius, within an area.

Points live on the unit sphere as 3D vectors in a k-d tree (scipy's cKDTree). The straight-line
(chord) distance between two unit vectors grows with the great-circle distance between the
points, so the tree's nearest neighbours are the true nearest neighbours anywhere on earth, with
no trouble at the antimeridian or the poles; distances are then measured exactly (haversine).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from civic.kernel.geo.points import EARTH_RADIUS_M, GeoError, Point, haversine_m, trusted_point
from civic.kernel.geo.shapes import Area, feature

NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})
Where = Callable[[Mapping[str, Any]], bool]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Placed:
    """A keyed point with optional attributes (JSON-like), as stored in an index."""

    key: str
    point: Point
    attributes: Mapping[str, Any] = field(default_factory=lambda: NO_ATTRIBUTES)

    def to_geojson(self) -> dict[str, Any]:
        """Return a GeoJSON Feature with the key as id and the attributes as properties."""
        return feature(self.point, self.attributes, id=self.key)


@dataclass(frozen=True, slots=True)
class Hit:
    """A point found by a query, with its great-circle distance from the query in metres."""

    key: str
    point: Point
    distance_m: float
    attributes: Mapping[str, Any] = field(default_factory=lambda: NO_ATTRIBUTES)

    def to_geojson(self) -> dict[str, Any]:
        """Return a GeoJSON Feature: the attributes and distance_m as properties, the key as id."""
        properties = {**self.attributes, "distance_m": round(self.distance_m, 2)}
        return feature(self.point, properties, id=self.key)


def unit_vectors(lats: FloatArray, lons: FloatArray) -> FloatArray:
    """Return (n, 3) unit vectors of latitudes and longitudes in degrees."""
    lat = np.radians(lats)
    lon = np.radians(lons)
    cos_lat = np.cos(lat)
    return np.column_stack((cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)))


def haversine_many(point: Point, lats: FloatArray, lons: FloatArray) -> FloatArray:
    """Great-circle distances in metres from point to arrays of latitudes and longitudes."""
    lat1 = math.radians(point.lat)
    lat2 = np.radians(lats)
    dlat = lat2 - lat1
    dlon = np.radians(lons - point.lon)
    h = np.sin(dlat / 2) ** 2 + math.cos(lat1) * np.cos(lat2) * np.sin(dlon / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0))))


def chord_of(distance_m: float) -> float:
    """Return the unit-sphere chord of a great-circle distance, with a rounding margin."""
    angle = min(distance_m / EARTH_RADIUS_M, math.pi)
    return 2 * math.sin(angle / 2) * (1 + 1e-9) + 1e-12


def check_radius(radius_m: float) -> float:
    """Return radius_m as a float, refusing negative, NaN or infinite radii."""
    radius = float(radius_m)
    if not math.isfinite(radius) or radius < 0:
        raise GeoError(f"radius must be a finite number of metres >= 0, not {radius_m}")
    return radius


class FixedIndex:
    """Immutable index of points that seldom move (hydrants, facilities, stations)."""

    def __init__(self, items: Iterable[Placed] = ()) -> None:
        """Index items; two items with one key are refused."""
        listed = list(items)
        self._build(
            [p.key for p in listed],
            np.fromiter((p.point.lat for p in listed), dtype=np.float64, count=len(listed)),
            np.fromiter((p.point.lon for p in listed), dtype=np.float64, count=len(listed)),
            [p.attributes for p in listed],
        )

    @classmethod
    def from_arrays(
        cls,
        keys: Sequence[str],
        lats: Sequence[float] | FloatArray,
        lons: Sequence[float] | FloatArray,
        attributes: Sequence[Mapping[str, Any]] | None = None,
    ) -> FixedIndex:
        """Index many points given as parallel arrays, validated all at once (the fast path)."""
        index = cls.__new__(cls)
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        if not (len(keys) == len(lat) == len(lon)) or (
            attributes is not None and len(attributes) != len(keys)
        ):
            raise GeoError("keys, latitudes, longitudes and attributes differ in length")
        bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
        if bad.any():
            first = int(np.argmax(bad))
            Point(lat[first], lon[first])  # raises with the message of the first bad point
        index._build(list(keys), lat, lon, list(attributes) if attributes is not None else None)
        return index

    def _build(
        self,
        keys: list[str],
        lats: FloatArray,
        lons: FloatArray,
        attributes: list[Mapping[str, Any]] | None,
    ) -> None:
        self._keys = keys
        self._positions = {key: i for i, key in enumerate(keys)}
        if len(self._positions) != len(keys):
            duplicate = next(k for k, count in Counter(keys).items() if count > 1)
            raise GeoError(f"the key {duplicate!r} appears twice")
        self._lats = lats
        self._lons = lons
        self._attributes = [a or NO_ATTRIBUTES for a in attributes] if attributes else None
        self._tree = cKDTree(unit_vectors(lats, lons) if keys else np.empty((0, 3)))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def keys(self) -> list[str]:
        """Every key, in index order."""
        return list(self._keys)

    def get(self, key: str) -> Placed | None:
        """Return the indexed point of key, or None."""
        i = self._positions.get(key)
        return None if i is None else self._placed(i)

    def items(self) -> Iterable[Placed]:
        """Every indexed point, in index order."""
        return (self._placed(i) for i in range(len(self._keys)))

    def _attributes_of(self, i: int) -> Mapping[str, Any]:
        return self._attributes[i] if self._attributes is not None else NO_ATTRIBUTES

    def _placed(self, i: int) -> Placed:
        point = trusted_point(float(self._lats[i]), float(self._lons[i]))
        return Placed(self._keys[i], point, self._attributes_of(i))

    def _hit(self, i: int, distance: float) -> Hit:
        point = trusted_point(float(self._lats[i]), float(self._lons[i]))
        return Hit(self._keys[i], point, distance, self._attributes_of(i))

    def _query_vector(self, point: Point) -> FloatArray:
        lat, lon = math.radians(point.lat), math.radians(point.lon)
        return np.array(
            [math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)]
        )

    def nearest(
        self, point: Point, k: int = 1, *, within_m: float | None = None, where: Where | None = None
    ) -> list[Hit]:
        """Return the k points nearest to point (within within_m, passing where), nearest first."""
        if k < 1:
            raise GeoError(f"k must be at least 1, not {k}")
        n = len(self._keys)
        if n == 0:
            return []
        bound = chord_of(check_radius(within_m)) if within_m is not None else np.inf
        query = self._query_vector(point)
        wanted = min(k, n)
        while True:
            chords, found = self._tree.query(query, k=wanted, distance_upper_bound=bound)
            finite = np.isfinite(np.atleast_1d(chords))
            indices = [int(i) for i in np.atleast_1d(found)[finite]]
            exhausted = len(indices) < wanted or wanted >= n
            if where is not None:
                indices = [i for i in indices if where(self._attributes_of(i))]
            if len(indices) >= k or exhausted:
                break
            wanted = min(n, wanted * 4)
        hits = self._hits(point, np.asarray(indices, dtype=np.intp), within_m)
        return hits[:k]

    def within_radius(
        self,
        point: Point,
        radius_m: float,
        *,
        where: Where | None = None,
        limit: int | None = None,
    ) -> list[Hit]:
        """Every point within radius_m metres of point (passing where), nearest first."""
        radius = check_radius(radius_m)
        if not self._keys:
            return []
        found = self._tree.query_ball_point(self._query_vector(point), chord_of(radius))
        indices = np.asarray(found, dtype=np.intp)
        if where is not None:
            indices = np.asarray(
                [i for i in indices if where(self._attributes_of(int(i)))], dtype=np.intp
            )
        hits = self._hits(point, indices, radius)
        return hits if limit is None else hits[:limit]

    def _hits(self, point: Point, indices: NDArray[np.intp], within_m: float | None) -> list[Hit]:
        if len(indices) == 0:
            return []
        distances = haversine_many(point, self._lats[indices], self._lons[indices])
        order = np.lexsort((indices, distances))
        hits = []
        for j in order:
            distance = float(distances[j])
            if within_m is not None and distance > within_m:
                continue
            hits.append(self._hit(int(indices[j]), distance))
        return hits

    def within_area(self, area: Area, *, where: Where | None = None) -> list[Placed]:
        """Every point inside the area or on its edge (passing where), sorted by key."""
        if not self._keys:
            return []
        candidates = self._candidates_in_box(area)
        inside = candidates[area.contains_many(self._lats[candidates], self._lons[candidates])]
        found = [
            self._placed(int(i))
            for i in inside
            if where is None or where(self._attributes_of(int(i)))
        ]
        return sorted(found, key=lambda placed: placed.key)

    def set_attributes(self, key: str, attributes: Mapping[str, Any]) -> None:
        """Replace the attributes of an indexed point (a hydrant's state) without a rebuild."""
        i = self._positions.get(key)
        if i is None:
            raise KeyError(key)
        if self._attributes is None:
            self._attributes = [NO_ATTRIBUTES] * len(self._keys)
        self._attributes[i] = attributes or NO_ATTRIBUTES

    def _candidates_in_box(self, area: Area) -> NDArray[np.intp]:
        box = area.bbox
        if box.north - box.south > 60 or box.east - box.west > 60:
            return np.arange(len(self._keys), dtype=np.intp)
        centre = box.centre
        rim = [
            Point(lat, lon)
            for lat in (box.south, centre.lat, box.north)
            for lon in (box.west, centre.lon, box.east)
        ]
        # Small boxes are convex enough on the sphere that their corners and edge midpoints bound
        # the distance from the centre; the margin covers the rest.
        radius = max(haversine_m(centre, p) for p in rim) * 1.01 + 1.0
        found = self._tree.query_ball_point(self._query_vector(centre), chord_of(radius))
        return np.asarray(found, dtype=np.intp)
