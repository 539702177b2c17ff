"""Areas (polygons, with holes and several parts) and GeoJSON output helpers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, mapping, shape
from shapely.geometry import Polygon as ShapelyPolygon

from civic.kernel.geo.points import METRES_PER_DEGREE, BoundingBox, GeoError, Point, destination

_AREA_TYPES = ("Polygon", "MultiPolygon")


class Area:
    """A polygon or multipolygon in longitude/latitude degrees; edges are straight in degrees."""

    __slots__ = ("_geometry",)

    def __init__(self, geometry: Any) -> None:
        """Wrap a shapely Polygon or MultiPolygon, refusing empty or invalid ones."""
        if not isinstance(geometry, ShapelyPolygon | MultiPolygon):
            raise GeoError(f"an area is a Polygon or MultiPolygon, not {type(geometry).__name__}")
        if geometry.is_empty:
            raise GeoError("the area is empty")
        if not geometry.is_valid:
            reason = shapely.is_valid_reason(geometry)
            raise GeoError(f"the area is not a valid polygon: {reason}")
        minx, miny, maxx, maxy = geometry.bounds
        if not (-180.0 <= minx and maxx <= 180.0 and -90.0 <= miny and maxy <= 90.0):
            raise GeoError("area coordinates must be [longitude, latitude] within WGS84 ranges")
        shapely.prepare(geometry)
        self._geometry = geometry

    @classmethod
    def from_points(cls, ring: Sequence[Point], *holes: Sequence[Point]) -> Area:
        """Build a polygon from its outer ring of points (closed or not) and optional holes."""
        if len(ring) < 3:
            raise GeoError("a polygon needs at least three corners")
        return cls(
            ShapelyPolygon([p.lonlat() for p in ring], [[p.lonlat() for p in h] for h in holes])
        )

    @classmethod
    def from_coordinates(cls, rings: Sequence[Sequence[Sequence[float]]]) -> Area:
        """Build a polygon from GeoJSON rings: [[[lon, lat], ...], hole, ...]."""
        return cls.from_geojson({"type": "Polygon", "coordinates": rings})

    @classmethod
    def from_geojson(cls, data: Mapping[str, Any]) -> Area:
        """Build an area from a GeoJSON Polygon/MultiPolygon, Feature or FeatureCollection."""
        kind = data.get("type")
        if kind == "Feature":
            geometry = data.get("geometry")
            if not isinstance(geometry, Mapping):
                raise GeoError("the GeoJSON Feature has no geometry")
            return cls.from_geojson(geometry)
        if kind == "FeatureCollection":
            parts = [cls.from_geojson(f)._geometry for f in data.get("features") or []]
            if not parts:
                raise GeoError("the GeoJSON FeatureCollection has no features")
            return cls(_as_area_geometry(shapely.union_all(parts)))
        if kind not in _AREA_TYPES:
            raise GeoError(f"expected a GeoJSON Polygon or MultiPolygon, not {kind!r}")
        try:
            geometry = shape(data)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise GeoError(f"malformed GeoJSON {kind}: {exc}") from None
        return cls(geometry)

    @classmethod
    def circle(cls, centre: Point, radius_m: float, *, segments: int = 64) -> Area:
        """Return a geofence: the polygon through `segments` points radius_m from centre."""
        if not math.isfinite(radius_m) or radius_m <= 0:
            raise GeoError(f"a circle needs a radius > 0 m, not {radius_m}")
        if segments < 8:
            raise GeoError("a circle needs at least 8 segments")
        ring = [destination(centre, 360.0 * i / segments, radius_m) for i in range(segments)]
        return cls.from_points(ring)

    @property
    def shape(self) -> Any:
        """The shapely geometry, in (longitude, latitude)."""
        return self._geometry

    @property
    def bbox(self) -> BoundingBox:
        """The box around the area."""
        minx, miny, maxx, maxy = self._geometry.bounds
        return BoundingBox(south=miny, west=minx, north=maxy, east=maxx)

    def contains(self, point: Point) -> bool:
        """Whether point lies inside the area or on its edge."""
        return bool(shapely.intersects_xy(self._geometry, point.lon, point.lat))

    def contains_many(self, lats: NDArray[np.float64], lons: NDArray[np.float64]) -> NDArray[Any]:
        """Vectorised `contains`: a boolean array for arrays of latitudes and longitudes."""
        return np.asarray(shapely.intersects_xy(self._geometry, lons, lats), dtype=bool)

    @property
    def area_m2(self) -> float:
        """Approximate surface in square metres (degrees scaled at the area's mean latitude)."""
        lat = math.radians(self._geometry.centroid.y)
        return float(self._geometry.area) * METRES_PER_DEGREE**2 * math.cos(lat)

    def to_geojson(self) -> dict[str, Any]:
        """Return the area as a GeoJSON geometry."""
        geometry: dict[str, Any] = _plain(mapping(self._geometry))
        return geometry

    def wkt(self) -> str:
        """Return the area as WKT, (longitude latitude) order, for PostGIS."""
        return str(self._geometry.wkt)

    def __repr__(self) -> str:
        return f"Area({self._geometry.geom_type}, bbox={self.bbox.as_list()})"


def _as_area_geometry(geometry: Any) -> Any:
    if isinstance(geometry, ShapelyPolygon | MultiPolygon):
        return geometry
    polygons = [g for g in getattr(geometry, "geoms", []) if isinstance(g, ShapelyPolygon)]
    if not polygons:
        raise GeoError("the features do not form an area")
    return MultiPolygon(polygons)


def _plain(value: Any) -> Any:
    """Turn shapely's tuples into lists, so that the output is plain JSON."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def line_string(points: Iterable[Point]) -> dict[str, Any]:
    """Return a GeoJSON LineString through points."""
    return {"type": "LineString", "coordinates": [[p.lon, p.lat] for p in points]}


def feature(
    geometry: Mapping[str, Any] | Point | Area,
    properties: Mapping[str, Any] | None = None,
    *,
    id: str | int | None = None,
) -> dict[str, Any]:
    """Return a GeoJSON Feature of a geometry (a Point, an Area or a GeoJSON geometry)."""
    if isinstance(geometry, Point | Area):
        geometry = geometry.to_geojson()
    result: dict[str, Any] = {
        "type": "Feature",
        "geometry": dict(geometry),
        "properties": dict(properties or {}),
    }
    if id is not None:
        result["id"] = id
    return result


def feature_collection(features: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Return a GeoJSON FeatureCollection."""
    return {"type": "FeatureCollection", "features": [dict(f) for f in features]}
