"""WGS84 points on a spherical earth: validation, distances, bearings, destinations, boxes."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The mean radius of the WGS84 ellipsoid, (2a + b) / 3: the sphere PostGIS measures geography on
# when asked for sphere distances, so both stores agree to the millimetre.
EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180


class GeoError(ValueError):
    """A coordinate, shape or distance that cannot be used, with a message that says why."""


def _coordinate(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise GeoError(f"{name} must be a number of degrees, not {value!r}")
    if not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise GeoError(f"{name} must be a number of degrees, not {value!r}") from None
    number = float(value)
    if not math.isfinite(number):
        raise GeoError(f"{name} must be a finite number of degrees, not {number}")
    return number


@dataclass(frozen=True, slots=True)
class Point:
    """A WGS84 position in degrees: latitude -90..90 (north +), longitude -180..180 (east +)."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        """Refuse NaN, infinities and out-of-range values; name a likely swap of lat and lon."""
        lat = _coordinate("latitude", self.lat)
        lon = _coordinate("longitude", self.lon)
        if not -90.0 <= lat <= 90.0:
            hint = ""
            if -90.0 <= lon <= 90.0 and -180.0 <= lat <= 180.0:
                hint = f"; latitude and longitude look swapped (lat={lon}, lon={lat}?)"
            raise GeoError(f"latitude {lat} is outside -90..90{hint}")
        if not -180.0 <= lon <= 180.0:
            raise GeoError(f"longitude {lon} is outside -180..180")
        object.__setattr__(self, "lat", lat)
        object.__setattr__(self, "lon", lon)

    @classmethod
    def from_lonlat(cls, coordinates: Iterable[Any]) -> Point:
        """Build a point from a GeoJSON position [longitude, latitude(, altitude)]."""
        values = list(coordinates)
        if len(values) not in (2, 3):
            raise GeoError(f"a GeoJSON position is [lon, lat], not {values!r}")
        return cls(lat=values[1], lon=values[0])

    @classmethod
    def from_geojson(cls, geometry: dict[str, Any]) -> Point:
        """Build a point from a GeoJSON Point geometry (or a Feature holding one)."""
        if geometry.get("type") == "Feature":
            geometry = geometry.get("geometry") or {}
        if geometry.get("type") != "Point":
            raise GeoError(f"expected a GeoJSON Point, not {geometry.get('type')!r}")
        return cls.from_lonlat(geometry.get("coordinates") or [])

    def lonlat(self) -> tuple[float, float]:
        """Return (longitude, latitude), the GeoJSON order."""
        return (self.lon, self.lat)

    def to_geojson(self) -> dict[str, Any]:
        """Return this point as a GeoJSON Point geometry."""
        return {"type": "Point", "coordinates": [self.lon, self.lat]}

    def distance_to(self, other: Point) -> float:
        """Great-circle distance to other, in metres."""
        return haversine_m(self, other)


def haversine_m(a: Point, b: Point) -> float:
    """Great-circle distance between two points in metres (haversine on the mean sphere)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlon = math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(a: Point, b: Point) -> float:
    """Return the initial bearing from a towards b, degrees clockwise from north in [0, 360)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlon = math.radians(b.lon - a.lon)
    y = math.sin(dlon) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return math.degrees(math.atan2(y, x)) % 360.0


def destination(origin: Point, bearing: float, distance_m: float) -> Point:
    """Return the point reached from origin after distance_m metres along an initial bearing."""
    if not math.isfinite(bearing) or not math.isfinite(distance_m) or distance_m < 0:
        raise GeoError("bearing must be finite and distance a finite number of metres >= 0")
    delta = distance_m / EARTH_RADIUS_M
    theta = math.radians(bearing)
    lat1, lon1 = math.radians(origin.lat), math.radians(origin.lon)
    sin_lat2 = math.sin(lat1) * math.cos(delta) + math.cos(lat1) * math.sin(delta) * math.cos(theta)
    lat2 = math.asin(max(-1.0, min(1.0, sin_lat2)))
    lon2 = lon1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(lat1),
        math.cos(delta) - math.sin(lat1) * sin_lat2,
    )
    lon = (math.degrees(lon2) + 540.0) % 360.0 - 180.0
    return Point(lat=max(-90.0, min(90.0, math.degrees(lat2))), lon=lon)


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A latitude/longitude box; west > east means it crosses the antimeridian."""

    south: float
    west: float
    north: float
    east: float

    def __post_init__(self) -> None:
        """Refuse corners that are no points, and a south edge above the north edge."""
        Point(self.south, self.west)
        Point(self.north, self.east)
        if self.south > self.north:
            raise GeoError(f"south {self.south} is above north {self.north}")

    @classmethod
    def around(cls, centre: Point, radius_m: float) -> BoundingBox:
        """Return the smallest box that holds every point within radius_m of centre."""
        if not math.isfinite(radius_m) or radius_m < 0:
            raise GeoError(f"radius must be a finite number of metres >= 0, not {radius_m}")
        dlat = math.degrees(radius_m / EARTH_RADIUS_M)
        south, north = centre.lat - dlat, centre.lat + dlat
        if south <= -90.0 or north >= 90.0:
            return cls(max(south, -90.0), -180.0, min(north, 90.0), 180.0)
        # The widest longitude span of a circle is at the latitude where it touches its meridians.
        ratio = math.sin(radius_m / EARTH_RADIUS_M) / math.cos(math.radians(centre.lat))
        if ratio >= 1.0:
            return cls(south, -180.0, north, 180.0)
        dlon = math.degrees(math.asin(ratio))
        west = (centre.lon - dlon + 540.0) % 360.0 - 180.0
        east = (centre.lon + dlon + 540.0) % 360.0 - 180.0
        return cls(south, west, north, east)

    @classmethod
    def of(cls, points: Iterable[Point]) -> BoundingBox:
        """Return the box of some points (not crossing the antimeridian)."""
        items = list(points)
        if not items:
            raise GeoError("a bounding box needs at least one point")
        lats = [p.lat for p in items]
        lons = [p.lon for p in items]
        return cls(min(lats), min(lons), max(lats), max(lons))

    def contains(self, point: Point) -> bool:
        """Whether point lies in the box (edges included)."""
        if not self.south <= point.lat <= self.north:
            return False
        if self.west <= self.east:
            return self.west <= point.lon <= self.east
        return point.lon >= self.west or point.lon <= self.east

    @property
    def centre(self) -> Point:
        """The middle of the box."""
        east = self.east if self.west <= self.east else self.east + 360.0
        lon = ((self.west + east) / 2 + 540.0) % 360.0 - 180.0
        return Point((self.south + self.north) / 2, lon)

    def as_list(self) -> list[float]:
        """Return [west, south, east, north], the GeoJSON "bbox" order."""
        return [self.west, self.south, self.east, self.north]


# South Korea with its islands (Jeju, Ulleung, Dokdo), a little wider than the provinces' box.
KOREA = BoundingBox(south=33.0, west=124.5, north=38.7, east=131.0)


def trusted_point(lat: float, lon: float) -> Point:
    """Build a point from coordinates an index already validated, skipping the checks."""
    point = object.__new__(Point)
    object.__setattr__(point, "lat", lat)
    object.__setattr__(point, "lon", lon)
    return point
