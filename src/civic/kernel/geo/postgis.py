"""The spatial store in PostgreSQL with PostGIS: one table of geography points, GiST-indexed.

Why a schema of its own (`civic_geo`): PostGIS brings a table (`spatial_ref_sys`) and hundreds of
functions, and the geography column exists only where PostGIS is installed. Keeping the
extension and the `geo_points` table out of the default schema keeps the ORM models and the
migrations identical on SQLite, on PostgreSQL and on PostgreSQL with PostGIS (the schema
comparison looks at the default schema), and leaves the ORM free of PostGIS types. Migration
0004 creates it where PostGIS is available; `PostgisSpatialStore.connect` creates it too when
PostGIS was installed after the migration ran.

Distances are measured on the sphere (`use_spheroid => false`), as the in-memory index does, so
both stores give the same answers; areas are tested in longitude/latitude degrees, as shapely does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from civic.kernel.geo.index import Hit, Placed, check_radius
from civic.kernel.geo.points import GeoError, Point, haversine_m, trusted_point
from civic.kernel.geo.shapes import Area
from civic.kernel.geo.store import Match, check_key, check_layer, check_match

log = structlog.get_logger("civic.geo")
SCHEMA = "civic_geo"
TABLE = f"{SCHEMA}.geo_points"


async def postgis_schema(connection: AsyncConnection) -> str | None:
    """Return the schema PostGIS is installed in, or None when it is not installed."""
    found = await connection.scalar(
        text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'postgis'"
        )
    )
    return str(found) if found is not None else None


async def ensure_geo_table(connection: AsyncConnection) -> str | None:
    """Create PostGIS (if available) and the geo_points table; return PostGIS's schema or None."""
    if connection.dialect.name != "postgresql":
        return None
    available = await connection.scalar(
        text("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
    )
    if not available:
        return None
    extension = await postgis_schema(connection)
    if extension is None or await connection.scalar(text(f"SELECT to_regclass('{TABLE}')")) is None:
        try:
            async with connection.begin_nested():
                for statement in geo_table_ddl(extension):
                    await connection.execute(text(statement))
        except (ProgrammingError, DBAPIError) as exc:
            # A role that may not create extensions: run in memory, say why.
            log.warning("postgis_unavailable", reason=str(exc.orig))
            return None
        extension = await postgis_schema(connection)
    return extension


def geo_table_ddl(extension: str | None) -> list[str]:
    """Return the statements that create the schema, PostGIS and the table (idempotent)."""
    statements = [f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"]
    if extension is None:
        statements.append(f"CREATE EXTENSION IF NOT EXISTS postgis SCHEMA {SCHEMA}")
        extension = SCHEMA
    statements += [
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            layer varchar(60) NOT NULL,
            key varchar(120) NOT NULL,
            lat double precision NOT NULL,
            lon double precision NOT NULL,
            geog "{extension}".geography(Point, 4326) NOT NULL,
            attributes jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_geo_points PRIMARY KEY (layer, key))""",
        f"CREATE INDEX IF NOT EXISTS ix_geo_points_geog ON {TABLE} USING gist (geog)",
    ]
    return statements


_POINT = "{e}.ST_SetSRID({e}.ST_MakePoint({lon}, {lat}), 4326)::{e}.geography"
_HERE = _POINT.replace("{lon}", ":lon").replace("{lat}", ":lat")
_COLUMNS = "key, lat, lon, attributes"
_UPSERT = (
    "INSERT INTO {table} (layer, key, lat, lon, geog, attributes, updated_at)"
    " VALUES (:layer, :key, :lat, :lon, {here}, CAST(:attributes AS jsonb), now())"
    " ON CONFLICT (layer, key) DO UPDATE SET lat = excluded.lat, lon = excluded.lon,"
    " geog = excluded.geog, attributes = excluded.attributes, updated_at = excluded.updated_at"
)
_LOAD = (
    "INSERT INTO {table} (layer, key, lat, lon, geog, attributes, updated_at)"
    " SELECT :layer, key, lat, lon, {column_point}, attributes::jsonb, now()"
    " FROM geo_points_load"
)
_NEAREST = (
    "SELECT {columns} FROM {table} WHERE {where} ORDER BY geog OPERATOR({e}.<->) {here} LIMIT :k"
)
_WITHIN = (
    "SELECT {columns} FROM {table} WHERE {where} AND {e}.ST_DWithin(geog, {here}, :radius, false)"
)
_IN_AREA = (
    "SELECT {columns} FROM {table} WHERE {where}"
    " AND {e}.ST_Intersects({e}.ST_GeomFromText(:wkt, 4326),"
    " {e}.ST_SetSRID({e}.ST_MakePoint(lon, lat), 4326)) ORDER BY key"
)


class PostgisSpatialStore:
    """A spatial store in PostgreSQL with PostGIS, shared by every process of the platform."""

    kind = "postgis"

    def __init__(self, engine: AsyncEngine, *, extension_schema: str) -> None:
        """Use engine; PostGIS's functions and types live in extension_schema."""
        self.engine = engine
        e = '"' + extension_schema.replace('"', '""') + '"'
        self._parts = {
            "table": TABLE,
            "columns": _COLUMNS,
            "e": e,
            "here": _HERE.format(e=e),
            "column_point": _POINT.format(e=e, lon="lon", lat="lat"),
        }

    def _sql(self, template: str, *, match: Match | None = None, within: bool = False) -> Any:
        # Only names we control reach the text (our table, PostGIS's schema as the catalog names
        # it, fixed fragments); every value is a bound parameter.
        where = "layer = :layer"
        if match:
            where += " AND attributes @> CAST(:match AS jsonb)"
        if within:
            where += " AND {e}.ST_DWithin(geog, {here}, :radius, false)".format(**self._parts)
        return text(template.format(where=where, **self._parts))

    @classmethod
    async def connect(cls, engine: AsyncEngine) -> PostgisSpatialStore | None:
        """Return a store on engine's database, or None when PostGIS is not available there."""
        if engine.dialect.name != "postgresql":
            return None
        async with engine.begin() as connection:
            extension = await ensure_geo_table(connection)
        return None if extension is None else cls(engine, extension_schema=extension)

    @staticmethod
    def _row(layer: str, item: Placed) -> dict[str, Any]:
        check_key(item.key)
        if not isinstance(item.point, Point):
            raise GeoError(f"the point of {item.key!r} is not a Point")
        return {
            "layer": layer,
            "key": item.key,
            "lat": item.point.lat,
            "lon": item.point.lon,
            "attributes": json.dumps(dict(item.attributes), ensure_ascii=False),
        }

    async def put(self, layer: str, item: Placed) -> None:
        """Add or move one point of a layer."""
        await self.put_many(layer, [item])

    async def put_many(self, layer: str, items: Iterable[Placed]) -> int:
        """Add or move many points of a layer; return how many."""
        rows = {item.key: self._row(check_layer(layer), item) for item in items}
        if rows:
            async with self.engine.begin() as connection:
                await connection.execute(self._sql(_UPSERT), list(rows.values()))
        return len(rows)

    async def replace_layer(self, layer: str, items: Iterable[Placed]) -> int:
        """Make items the whole content of a layer (bulk COPY); return how many."""
        rows = {item.key: self._row(check_layer(layer), item) for item in items}
        records = [(r["key"], r["lat"], r["lon"], r["attributes"]) for r in rows.values()]
        async with self.engine.begin() as connection:
            await connection.execute(
                text(
                    "CREATE TEMP TABLE geo_points_load (key text, lat float8, lon float8,"
                    " attributes text) ON COMMIT DROP"
                )
            )
            raw = await connection.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                "geo_points_load", records=records
            )
            await connection.execute(
                self._sql("DELETE FROM {table} WHERE {where}"), {"layer": layer}
            )
            await connection.execute(self._sql(_LOAD), {"layer": layer})
        return len(records)

    async def remove(self, layer: str, key: str) -> bool:
        """Remove one point; return whether it was there."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                self._sql("DELETE FROM {table} WHERE {where} AND key = :key"),
                {"layer": check_layer(layer), "key": key},
            )
        return bool(getattr(result, "rowcount", 0))

    async def get(self, layer: str, key: str) -> Placed | None:
        """Return one point of a layer, or None."""
        rows = await self._select(
            self._sql("SELECT {columns} FROM {table} WHERE {where} AND key = :key"),
            {"layer": check_layer(layer), "key": key},
        )
        return _placed(rows[0]) if rows else None

    async def count(self, layer: str) -> int:
        """Return the number of points in a layer."""
        rows = await self._select(
            self._sql("SELECT count(*) AS n FROM {table} WHERE {where}"),
            {"layer": check_layer(layer)},
        )
        return int(rows[0].n)

    async def nearest(
        self,
        layer: str,
        point: Point,
        *,
        k: int = 1,
        within_m: float | None = None,
        match: Match | None = None,
    ) -> list[Hit]:
        """Return the k points nearest to point, nearest first (a KNN scan of the GiST index)."""
        if k < 1:
            raise GeoError(f"k must be at least 1, not {k}")
        params = self._params(layer, point, match) | {"k": k}
        if within_m is not None:
            params["radius"] = check_radius(within_m)
        sql = self._sql(_NEAREST, match=match, within=within_m is not None)
        return _ranked(point, await self._select(sql, params), within_m)

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
        radius = check_radius(radius_m)
        params = self._params(layer, point, match) | {"radius": radius}
        hits = _ranked(point, await self._select(self._sql(_WITHIN, match=match), params), radius)
        return hits if limit is None else hits[:limit]

    async def within_area(
        self, layer: str, area: Area, *, match: Match | None = None
    ) -> list[Placed]:
        """Return the points inside an area (edge included), sorted by key."""
        box = area.bbox
        centre = box.centre
        rim = [
            Point(lat, lon)
            for lat in (box.south, centre.lat, box.north)
            for lon in (box.west, centre.lon, box.east)
        ]
        # A circle around the box lets the GiST index narrow the search before the exact test;
        # boxes too large to be bounded that way are tested point by point.
        small = box.north - box.south <= 60 and box.east - box.west <= 60
        reach = max(haversine_m(centre, p) for p in rim) * 1.05 + 10.0
        params = self._params(layer, centre, match) | {"radius": reach, "wkt": area.wkt()}
        rows = await self._select(self._sql(_IN_AREA, match=match, within=small), params)
        return [_placed(row) for row in rows]

    def _params(self, layer: str, point: Point, match: Match | None) -> dict[str, Any]:
        params: dict[str, Any] = {"layer": check_layer(layer), "lat": point.lat, "lon": point.lon}
        checked = check_match(match)
        if checked:
            params["match"] = json.dumps(dict(checked), ensure_ascii=False)
        return params

    async def _select(self, sql: Any, params: Mapping[str, Any]) -> Sequence[Any]:
        async with self.engine.connect() as connection:
            result = await connection.execute(sql, dict(params))
            return result.all()


def _attributes(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return dict(value or {})


def _placed(row: Any) -> Placed:
    return Placed(row.key, trusted_point(row.lat, row.lon), _attributes(row.attributes))


def _ranked(point: Point, rows: Sequence[Any], within_m: float | None) -> list[Hit]:
    # Measured here with the same haversine as the in-memory index: equal inputs, equal answers.
    hits = [
        Hit(row.key, p, haversine_m(point, p), _attributes(row.attributes))
        for row in rows
        for p in [trusted_point(row.lat, row.lon)]
    ]
    if within_m is not None:
        hits = [h for h in hits if h.distance_m <= within_m]
    return sorted(hits, key=lambda h: (h.distance_m, h.key))
