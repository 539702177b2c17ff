"""Geography: WGS84 points, distances, areas, spatial indexes and stores (see routing for ETAs).

`FixedIndex` answers nearest / radius / area queries over points that seldom move (a k-d tree on
the unit sphere); `MovingIndex` keeps things that move, with O(1) updates in a grid; a
`SpatialStore` puts layers of points behind one async API, in memory or in PostGIS. The kernel
part in `civic.kernel.geo.part` holds the platform's store and router (`geo_of(kernel)`).
"""

from civic.kernel.geo.index import NO_ATTRIBUTES, FixedIndex, Hit, Placed, Where
from civic.kernel.geo.moving import MovingIndex
from civic.kernel.geo.opendata import (
    LoadedPoints,
    fire_water_facilities_path,
    load_fire_water_facilities,
)
from civic.kernel.geo.points import (
    EARTH_RADIUS_M,
    KOREA,
    BoundingBox,
    GeoError,
    Point,
    bearing_deg,
    destination,
    haversine_m,
)
from civic.kernel.geo.shapes import Area, feature, feature_collection, line_string
from civic.kernel.geo.store import InMemorySpatialStore, Match, SpatialStore

__all__ = [
    "EARTH_RADIUS_M",
    "KOREA",
    "NO_ATTRIBUTES",
    "Area",
    "BoundingBox",
    "FixedIndex",
    "GeoError",
    "Hit",
    "InMemorySpatialStore",
    "LoadedPoints",
    "Match",
    "MovingIndex",
    "Placed",
    "Point",
    "SpatialStore",
    "Where",
    "bearing_deg",
    "destination",
    "feature",
    "feature_collection",
    "fire_water_facilities_path",
    "haversine_m",
    "line_string",
    "load_fire_water_facilities",
]
