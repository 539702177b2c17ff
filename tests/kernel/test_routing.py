"""Routers: the straight line, and OSRM's HTTP API answered by a small real server on 127.0.0.1."""

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from civic.kernel.geo import Hit, Point, haversine_m
from civic.kernel.routing import (
    OSRM,
    FallbackRouter,
    NoRoute,
    OsrmRouter,
    RoutingError,
    StraightLineRouter,
    UnknownProfile,
    close_router,
    rank_by_route,
    router_for,
)
from civic.kernel.settings import RoutingSettings
from tests.waiting import eventually

SEOUL_CITY_HALL = Point(37.5663, 126.9779)
BUSAN_CITY_HALL = Point(35.1798, 129.0750)
INCIDENT = Point(37.5145, 127.1059)
NORTH_OF_THE_RIVER_OF_NO_ROADS = 38.0
SPEED_M_S = 10.0
PROFILES = {"fire_engine": "driving", "walking": "foot", "broken": "broken", "slow": "slow"}
PROFILES |= {"garbage": "garbage", "text": "text"}


@dataclass
class FakeOsrm:
    """Answers like osrm-routed from fixed rules: roads run north-south and east-west only."""

    port: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def route(self, request: Request, profile: str, coordinates: str) -> Response:
        self.requests.append((request.url.path, dict(request.query_params)))
        if profile == "broken":
            return PlainTextResponse("<html>502 Bad Gateway</html>", status_code=502)
        if profile == "text":
            return PlainTextResponse("not json", status_code=200)
        if profile == "slow":
            await asyncio.sleep(1)
        if profile == "garbage":
            return JSONResponse({"code": "Ok", "routes": [{"distance": 1}]})
        try:
            (lon1, lat1), (lon2, lat2) = [map(float, p.split(",")) for p in coordinates.split(";")]
        except ValueError:
            return JSONResponse({"code": "InvalidUrl", "message": "bad"}, status_code=400)
        if max(lat1, lat2) > NORTH_OF_THE_RIVER_OF_NO_ROADS:
            message = "Impossible route between points"
            return JSONResponse({"code": "NoRoute", "message": message}, status_code=400)
        path = [Point(lat1, lon1), Point(lat1, lon2), Point(lat2, lon2)]
        distance = haversine_m(path[0], path[1]) + haversine_m(path[1], path[2])
        route = {
            "geometry": {"type": "LineString", "coordinates": [[p.lon, p.lat] for p in path]},
            "distance": distance,
            "duration": distance / SPEED_M_S,
            "weight": distance / SPEED_M_S,
            "legs": [],
        }
        return JSONResponse({"code": "Ok", "routes": [route], "waypoints": []})


@pytest.fixture
async def osrm() -> AsyncIterator[FakeOsrm]:
    fake = FakeOsrm()
    app = FastAPI()
    app.add_api_route("/route/v1/{profile}/{coordinates}", fake.route, methods=["GET"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="fake-osrm")
    try:
        await eventually(lambda: server.started or task.done())
        fake.port = sock.getsockname()[1]
        yield fake
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def osrm_router(osrm: FakeOsrm) -> AsyncIterator[OsrmRouter]:
    router = OsrmRouter(osrm.url, profiles=PROFILES, timeout_s=0.5)
    yield router
    await router.aclose()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The straight line


async def test_straight_line_routes_with_detour_and_speed() -> None:
    router = StraightLineRouter(detour_factor=1.3, speeds_kmh={"fire_engine": 36, "walking": 3.6})
    route = await router.route(SEOUL_CITY_HALL, BUSAN_CITY_HALL, profile="fire_engine")
    assert route.distance_m == pytest.approx(325_050 * 1.3, abs=700)
    assert route.duration_s == pytest.approx(route.distance_m / 10)
    assert route.geometry == (SEOUL_CITY_HALL, BUSAN_CITY_HALL)
    assert route.estimated and route.source == "straight_line"
    walk = await router.route(SEOUL_CITY_HALL, BUSAN_CITY_HALL, profile="walking")
    assert walk.duration_s == pytest.approx(route.duration_s * 10)
    assert (await router.route(INCIDENT, INCIDENT, profile="walking")).duration_s == 0
    with pytest.raises(UnknownProfile, match="known: fire_engine, walking"):
        await router.route(INCIDENT, SEOUL_CITY_HALL, profile="hovercraft")
    assert route.to_geojson() == {
        "type": "Feature",
        "geometry": {
            "type": "LineString",
            "coordinates": [[126.9779, 37.5663], [129.075, 35.1798]],
        },
        "properties": {
            "distance_m": round(route.distance_m, 1),
            "duration_s": round(route.duration_s, 1),
            "profile": "fire_engine",
            "source": "straight_line",
        },
    }


def test_bad_router_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="detour factor"):
        StraightLineRouter(detour_factor=0.5, speeds_kmh={"car": 30})
    with pytest.raises(ValueError, match="speed above 0"):
        StraightLineRouter(speeds_kmh={"car": 0})
    with pytest.raises(ValidationError, match="speeds_kmh"):
        RoutingSettings(speeds_kmh={"car": -1})
    with pytest.raises(ValidationError, match="detour_factor"):
        RoutingSettings(detour_factor=0.9)
    with pytest.raises(ValidationError, match="osrm_url"):
        RoutingSettings(osrm_url="ftp://example")


async def test_router_for_picks_osrm_only_when_its_url_is_set() -> None:
    assert isinstance(router_for(RoutingSettings()), StraightLineRouter)
    fallback = router_for(RoutingSettings(osrm_url="http://127.0.0.1:5000"))
    assert isinstance(fallback, FallbackRouter) and isinstance(fallback.primary, OsrmRouter)
    await close_router(fallback)
    strict = router_for(RoutingSettings(osrm_url="http://127.0.0.1:5000", osrm_fallback=False))
    assert isinstance(strict, OsrmRouter)
    await close_router(strict)


# OSRM over HTTP


async def test_osrm_routes_follow_the_server(osrm: FakeOsrm, osrm_router: OsrmRouter) -> None:
    route = await osrm_router.route(INCIDENT, SEOUL_CITY_HALL, profile="fire_engine")
    assert route.source == OSRM and not route.estimated
    assert route.geometry == (
        INCIDENT,
        Point(INCIDENT.lat, SEOUL_CITY_HALL.lon),
        SEOUL_CITY_HALL,
    )
    expected = haversine_m(INCIDENT, route.geometry[1]) + haversine_m(
        route.geometry[1], SEOUL_CITY_HALL
    )
    assert route.distance_m == pytest.approx(expected, rel=1e-6)
    assert route.duration_s == pytest.approx(expected / SPEED_M_S, rel=1e-6)
    path, query = osrm.requests[-1]
    assert path == "/route/v1/driving/127.1059000,37.5145000;126.9779000,37.5663000"
    assert query["overview"] == "full" and query["geometries"] == "geojson"


@pytest.mark.parametrize(
    ("profile", "error", "message"),
    [
        ("broken", RoutingError, "answered 502 without JSON"),
        ("text", RoutingError, "answered 200 without JSON"),
        ("slow", RoutingError, "did not answer within 0.5 s"),
        ("garbage", RoutingError, "malformed OSRM answer"),
        ("bus", UnknownProfile, "unknown profile 'bus'"),
    ],
)
async def test_osrm_failures_are_clear_errors(
    osrm_router: OsrmRouter, profile: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await osrm_router.route(INCIDENT, SEOUL_CITY_HALL, profile=profile)


async def test_osrm_no_route_and_unreachable_server(osrm_router: OsrmRouter) -> None:
    with pytest.raises(NoRoute, match="Impossible route"):
        await osrm_router.route(INCIDENT, Point(38.5, 127.0), profile="fire_engine")
    nobody = OsrmRouter(f"http://127.0.0.1:{closed_port()}", profiles=PROFILES, timeout_s=1)
    try:
        with pytest.raises(RoutingError, match="unreachable"):
            await nobody.route(INCIDENT, SEOUL_CITY_HALL, profile="fire_engine")
    finally:
        await nobody.aclose()


async def test_fallback_estimates_when_the_server_fails(osrm: FakeOsrm) -> None:
    settings = RoutingSettings(osrm_url=osrm.url, osrm_profiles=PROFILES, osrm_timeout_seconds=0.5)
    router = router_for(settings)
    try:
        good = await router.route(INCIDENT, SEOUL_CITY_HALL, profile="fire_engine")
        assert good.source == OSRM and good.note is None
        with pytest.raises(NoRoute):
            await router.route(INCIDENT, Point(38.5, 127.0), profile="fire_engine")
    finally:
        await close_router(router)
    down = router_for(RoutingSettings(osrm_url=f"http://127.0.0.1:{closed_port()}"))
    try:
        estimate = await down.route(INCIDENT, SEOUL_CITY_HALL, profile="fire_engine")
        assert estimate.estimated and "unreachable" in (estimate.note or "")
        assert estimate.to_geojson()["properties"]["note"].startswith("estimated:")
    finally:
        await close_router(down)


# Ranking by route


async def test_rank_by_route_orders_by_the_roads_and_leaves_out_the_unroutable(
    osrm: FakeOsrm, osrm_router: OsrmRouter
) -> None:
    diagonal = Point(INCIDENT.lat + 0.003, INCIDENT.lon + 0.003)  # ~420 m away, ~600 m by road
    straight = Point(INCIDENT.lat + 0.0045, INCIDENT.lon)  # ~500 m away, 500 m by road
    island = Point(38.5, 127.0)
    hits = [
        Hit(key, point, haversine_m(INCIDENT, point))
        for key, point in (("diagonal", diagonal), ("straight", straight), ("island", island))
    ]
    assert hits[0].distance_m < hits[1].distance_m
    ranked = await rank_by_route(osrm_router, INCIDENT, hits, profile="fire_engine")
    assert [r.candidate.key for r in ranked] == ["straight", "diagonal"]
    assert ranked[0].route.distance_m < ranked[1].route.distance_m
    by_distance = await rank_by_route(
        osrm_router, INCIDENT, hits, profile="fire_engine", by="distance", limit=1
    )
    assert [r.candidate.key for r in by_distance] == ["straight"]

    osrm.requests.clear()
    await rank_by_route(
        osrm_router, INCIDENT, hits[:1], profile="fire_engine", direction="to_origin"
    )
    assert osrm.requests[0][0].endswith(
        f"{diagonal.lon:.7f},{diagonal.lat:.7f};127.1059000,37.5145000"
    )

    with pytest.raises(RoutingError, match="502"):
        await rank_by_route(osrm_router, INCIDENT, hits, profile="broken")
    straight_line = StraightLineRouter(speeds_kmh={"walking": 4.5})
    naive = await rank_by_route(straight_line, INCIDENT, hits, profile="walking")
    assert [r.candidate.key for r in naive] == ["diagonal", "straight", "island"]
