"""Spatial stores: the in-memory one, and PostGIS giving the same answers on the same points."""

import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from civic.kernel import migrations
from civic.kernel.db import create_engine
from civic.kernel.geo import Area, GeoError, InMemorySpatialStore, Placed, Point, SpatialStore
from civic.kernel.geo.part import GeoPart, geo_of
from civic.kernel.geo.postgis import PostgisSpatialStore
from civic.kernel.routing import StraightLineRouter
from tests.conftest import DB_KIND, POSTGRES_ADMIN_URL, need_server
from tests.kernel.test_geo import SONGPA, brute_nearest, random_points

on_postgres = pytest.mark.skipif(DB_KIND != "postgres", reason="runs on the PostgreSQL leg")


async def test_memory_store_layers_and_updates() -> None:
    store = InMemorySpatialStore()
    assert isinstance(store, SpatialStore)
    points = random_points(random.Random(1), 500, SONGPA, 0.02)
    assert await store.replace_layer("hydrants", points) == 500
    assert await store.count("hydrants") == 500 and await store.count("units") == 0
    nearest = await store.nearest("hydrants", SONGPA, k=3, match={"usable": True})
    usable = lambda a: a["usable"]  # noqa: E731
    assert [h.key for h in nearest] == brute_nearest(points, SONGPA, 3, where=usable)

    # A change of state only: the index is kept and answers with the new attributes.
    first = nearest[0]
    await store.put("hydrants", Placed(first.key, first.point, {"usable": False, "n": 0}))
    after = await store.nearest("hydrants", SONGPA, k=3, match={"usable": True})
    assert first.key not in [h.key for h in after]
    # A move: the index is rebuilt on the next query.
    await store.put("hydrants", Placed("new", SONGPA, {"usable": True}))
    assert (await store.nearest("hydrants", SONGPA))[0].key == "new"
    assert await store.remove("hydrants", "new") and not await store.remove("hydrants", "new")
    assert (await store.nearest("hydrants", SONGPA))[0].key != "new"
    assert await store.get("hydrants", first.key) == Placed(
        first.key, first.point, {"usable": False, "n": 0}
    )
    assert await store.put_many("units", [Placed("u1", SONGPA)]) == 1
    assert [h.key for h in await store.within_radius("units", SONGPA, 10)] == ["u1"]


async def test_stores_refuse_bad_layers_keys_and_matches() -> None:
    store = InMemorySpatialStore()
    with pytest.raises(GeoError, match="layer name"):
        await store.count("Bad Layer")
    with pytest.raises(GeoError, match="key"):
        await store.put("hydrants", Placed("", SONGPA))
    with pytest.raises(GeoError, match="match value"):
        await store.nearest("hydrants", SONGPA, match={"state": ["양호"]})  # type: ignore[dict-item]


async def test_match_tells_booleans_from_numbers() -> None:
    store = InMemorySpatialStore()
    await store.put_many(
        "x", [Placed("one", SONGPA, {"v": 1}), Placed("true", SONGPA, {"v": True})]
    )
    assert [h.key for h in await store.nearest("x", SONGPA, k=5, match={"v": True})] == ["true"]
    assert [h.key for h in await store.nearest("x", SONGPA, k=5, match={"v": 1})] == ["one"]


@pytest.fixture
async def postgis(database_url: str) -> AsyncIterator[PostgisSpatialStore]:
    engine = create_engine(database_url)
    try:
        store = await PostgisSpatialStore.connect(engine)
        if store is None:
            need_server("PostGIS", "the postgis extension is not available on localhost:5432")
        yield store
    finally:
        await engine.dispose()


async def compare_stores(memory: SpatialStore, postgis: SpatialStore, layer: str) -> None:
    rng = random.Random(99)
    for _ in range(25):
        query = Point(SONGPA.lat + rng.uniform(-0.03, 0.03), SONGPA.lon + rng.uniform(-0.03, 0.03))
        for k, within, match in ((5, None, None), (4, 300.0, {"usable": True})):
            mine = await memory.nearest(layer, query, k=k, within_m=within, match=match)
            theirs = await postgis.nearest(layer, query, k=k, within_m=within, match=match)
            assert [h.key for h in theirs] == [h.key for h in mine]
            for a, b in zip(mine, theirs, strict=True):
                assert b.distance_m == pytest.approx(a.distance_m, abs=1e-6)
                assert (b.point, dict(b.attributes)) == (a.point, dict(a.attributes))
        for match in (None, {"usable": False}):
            mine = await memory.within_radius(layer, query, 500, match=match)
            theirs = await postgis.within_radius(layer, query, 500, match=match)
            assert [h.key for h in theirs] == [h.key for h in mine]
        area = Area.circle(query, rng.uniform(200, 1_500))
        mine_in = await memory.within_area(layer, area)
        theirs_in = await postgis.within_area(layer, area)
        assert [p.key for p in theirs_in] == [p.key for p in mine_in]


@on_postgres
async def test_postgis_gives_the_same_answers_as_memory(postgis: PostgisSpatialStore) -> None:
    layer = f"test-{uuid.uuid4().hex[:8]}"
    points = random_points(random.Random(3), 2_000, SONGPA, 0.03)
    memory = InMemorySpatialStore()
    assert await memory.replace_layer(layer, points) == await postgis.replace_layer(layer, points)
    assert await postgis.count(layer) == 2_000
    await compare_stores(memory, postgis, layer)

    moved = Placed("p1", Point(37.52, 127.11), {"usable": True, "n": 1, "note": "소화전"})
    for store in (memory, postgis):
        await store.put(layer, moved)
        await store.put_many(layer, [Placed("extra", SONGPA, {"usable": False})])
        assert await store.remove(layer, "p2") and not await store.remove(layer, "p2")
    assert await postgis.get(layer, "p1") == moved and await postgis.get(layer, "p2") is None
    assert await postgis.count(layer) == await memory.count(layer) == 2_000
    await compare_stores(memory, postgis, layer)
    huge = Area.from_coordinates([[[60, -10], [170, -10], [170, 80], [60, 80], [60, -10]]])
    assert len(await postgis.within_area(layer, huge)) == len(await memory.within_area(layer, huge))
    assert await postgis.replace_layer(layer, []) == 0 and await postgis.count(layer) == 0


@on_postgres
async def test_the_geo_part_uses_postgis_on_postgresql(app: FastAPI) -> None:
    part = geo_of(app.state.kernel)
    assert isinstance(part, GeoPart)
    if part.store.kind != "postgis":
        need_server("PostGIS", "the postgis extension is not available on localhost:5432")
    assert isinstance(part.store, PostgisSpatialStore)
    assert isinstance(part.router, StraightLineRouter)


async def test_the_geo_part_runs_in_memory_on_sqlite(app: FastAPI) -> None:
    part = geo_of(app.state.kernel)
    if DB_KIND == "sqlite":
        assert part.store.kind == "memory"
    await part.store.put("probe", Placed("k", SONGPA))
    assert [h.key for h in await part.store.nearest("probe", SONGPA)] == ["k"]
    await part.store.remove("probe", "k")


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        need_server("PostgreSQL on localhost:5432", repr(exc))
    name = f"civic_geo_test_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@on_postgres
async def test_migration_0004_creates_and_removes_postgis_in_its_own_schema(
    empty_postgres_url: str,
) -> None:
    engine = create_engine(empty_postgres_url)

    async def state() -> tuple[object, object, object]:
        async with engine.connect() as connection:
            return (
                await connection.scalar(text("SELECT to_regclass('civic_geo.geo_points')")),
                await connection.scalar(
                    text(
                        "SELECT extnamespace::regnamespace FROM pg_extension"
                        " WHERE extname = 'postgis'"
                    )
                ),
                await connection.scalar(text("SELECT to_regclass('public.spatial_ref_sys')")),
            )

    try:
        await migrations.upgrade(engine, "0004")
        table, extension, public_table = await state()
        if extension is None:
            need_server("PostGIS", "the postgis extension is not available on localhost:5432")
        assert (str(table), str(extension), public_table) == (
            "civic_geo.geo_points",
            "civic_geo",
            None,
        )
        await migrations.downgrade(engine, "0002")
        assert await state() == (None, None, None)
        await migrations.upgrade(engine, "0004")
        assert (await state())[0] is not None
    finally:
        await engine.dispose()
