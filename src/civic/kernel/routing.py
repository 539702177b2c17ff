"""Routes and ETAs behind one `Router` protocol: a straight line with a detour factor, or OSRM.

The straight-line router needs nothing and answers at once; it is the embedded default and the
fallback. `OsrmRouter` asks an OSRM server you run (`CIVIC_ROUTING__OSRM_URL`) over its HTTP API,
for road geometry, distance and duration. `rank_by_route` orders candidates (hydrants near an
incident, units that could go) by what the router says instead of by straight-line distance.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, Protocol, TypeVar

import httpx
import structlog

from civic.kernel.geo.points import GeoError, Point, haversine_m
from civic.kernel.geo.shapes import line_string
from civic.kernel.settings import RoutingSettings

log = structlog.get_logger("civic.routing")
STRAIGHT_LINE = "straight_line"
OSRM = "osrm"


class RoutingError(Exception):
    """A route could not be worked out; the message says why (server down, bad answer, ...)."""


class NoRoute(RoutingError):
    """The router knows no way between the two points (an island, a closed area)."""


class UnknownProfile(RoutingError):
    """The vehicle profile is not configured."""


@dataclass(frozen=True)
class Route:
    """A way from one point to another: its geometry, length and travel time."""

    geometry: tuple[Point, ...]
    distance_m: float
    duration_s: float
    profile: str
    source: str = STRAIGHT_LINE
    note: str | None = field(default=None, compare=False)

    @property
    def estimated(self) -> bool:
        """Whether this is a straight-line estimate rather than a route along roads."""
        return self.source == STRAIGHT_LINE

    def to_geojson(self) -> dict[str, Any]:
        """Return the route as a GeoJSON Feature with a LineString and its figures."""
        properties: dict[str, Any] = {
            "distance_m": round(self.distance_m, 1),
            "duration_s": round(self.duration_s, 1),
            "profile": self.profile,
            "source": self.source,
        }
        if self.note:
            properties["note"] = self.note
        return {"type": "Feature", "geometry": line_string(self.geometry), "properties": properties}


class Router(Protocol):
    """Anything that finds a route between two points for a vehicle profile."""

    async def route(self, origin: Point, destination: Point, *, profile: str) -> Route:
        """Return the route from origin to destination; raise RoutingError when there is none."""
        ...


class StraightLineRouter:
    """Great-circle distance times a detour factor, at an average speed per vehicle profile."""

    def __init__(self, *, detour_factor: float = 1.3, speeds_kmh: Mapping[str, float]) -> None:
        """Use detour_factor (>= 1) and speeds in km/h per profile (each > 0)."""
        if not math.isfinite(detour_factor) or detour_factor < 1:
            raise ValueError(f"the detour factor must be at least 1, not {detour_factor}")
        slow = [name for name, speed in speeds_kmh.items() if not 0 < speed < math.inf]
        if slow or not speeds_kmh:
            raise ValueError(f"every profile needs a speed above 0 km/h: {slow or 'none given'}")
        self.detour_factor = detour_factor
        self.speeds_kmh = dict(speeds_kmh)

    @property
    def profiles(self) -> list[str]:
        """The vehicle profiles this router knows."""
        return sorted(self.speeds_kmh)

    def estimate(self, origin: Point, destination: Point, *, profile: str) -> Route:
        """Return the straight-line estimate at once (no I/O)."""
        speed = self.speeds_kmh.get(profile)
        if speed is None:
            raise UnknownProfile(f"unknown profile {profile!r}; known: {', '.join(self.profiles)}")
        distance = haversine_m(origin, destination) * self.detour_factor
        return Route((origin, destination), distance, distance / (speed / 3.6), profile)

    async def route(self, origin: Point, destination: Point, *, profile: str) -> Route:
        """Return the straight-line estimate."""
        return self.estimate(origin, destination, profile=profile)


class OsrmRouter:
    """Routes from an OSRM server's HTTP API (`/route/v1/{profile}/{lon},{lat};{lon},{lat}`)."""

    def __init__(
        self,
        base_url: str,
        *,
        profiles: Mapping[str, str],
        timeout_s: float = 3.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """Ask the server at base_url; profiles maps our vehicle profiles to OSRM's."""
        self.base_url = base_url.rstrip("/")
        self.profiles = dict(profiles)
        self.timeout_s = timeout_s
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s, trust_env=False)

    async def aclose(self) -> None:
        """Close the HTTP client this router opened."""
        if self._own_client:
            await self._client.aclose()

    async def route(self, origin: Point, destination: Point, *, profile: str) -> Route:
        """Ask the server for the fastest route; raise RoutingError saying what went wrong."""
        osrm_profile = self.profiles.get(profile)
        if osrm_profile is None:
            known = ", ".join(sorted(self.profiles))
            raise UnknownProfile(f"unknown profile {profile!r}; known: {known}")
        where = f"{origin.lon:.7f},{origin.lat:.7f};{destination.lon:.7f},{destination.lat:.7f}"
        url = f"{self.base_url}/route/v1/{osrm_profile}/{where}"
        params = {"overview": "full", "geometries": "geojson", "steps": "false"}
        try:
            response = await self._client.get(url, params=params, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise RoutingError(
                f"the OSRM server at {self.base_url} did not answer within {self.timeout_s:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise RoutingError(
                f"the OSRM server at {self.base_url} is unreachable: {exc!r}"
            ) from None
        return _parse_osrm(self.base_url, response, profile)


def _parse_osrm(base_url: str, response: httpx.Response, profile: str) -> Route:
    try:
        body = response.json()
    except ValueError:
        raise RoutingError(
            f"the OSRM server at {base_url} answered {response.status_code} without JSON: "
            f"{response.text[:200]!r}"
        ) from None
    code = body.get("code") if isinstance(body, dict) else None
    if code in ("NoRoute", "NoSegment"):
        raise NoRoute(f"OSRM found no route ({code}): {body.get('message', '')}")
    if response.status_code != 200 or code != "Ok":
        message = body.get("message", "") if isinstance(body, dict) else ""
        raise RoutingError(
            f"the OSRM server at {base_url} answered {response.status_code} {code}: {message}"
        )
    try:
        best = body["routes"][0]
        geometry = tuple(Point.from_lonlat(c) for c in best["geometry"]["coordinates"])
        distance, duration = float(best["distance"]), float(best["duration"])
    except (KeyError, IndexError, TypeError, ValueError, GeoError) as exc:
        raise RoutingError(f"malformed OSRM answer from {base_url}: {exc!r}") from None
    if len(geometry) < 2 or not (distance >= 0 and duration >= 0):
        raise RoutingError(f"malformed OSRM answer from {base_url}: empty geometry or negative")
    return Route(geometry, distance, duration, profile, OSRM)


class FallbackRouter:
    """Ask a primary router; when it fails (not when it finds no route), estimate instead."""

    def __init__(self, primary: Router, fallback: StraightLineRouter) -> None:
        """Use primary, and fallback when primary raises a RoutingError other than NoRoute."""
        self.primary = primary
        self.fallback = fallback

    async def route(self, origin: Point, destination: Point, *, profile: str) -> Route:
        """Return the primary's route, or the fallback's estimate with a note of why."""
        try:
            return await self.primary.route(origin, destination, profile=profile)
        except (NoRoute, UnknownProfile):
            raise
        except RoutingError as exc:
            log.warning("routing_fallback", reason=str(exc))
            estimate = await self.fallback.route(origin, destination, profile=profile)
            return replace(estimate, note=f"estimated: {exc}")

    async def aclose(self) -> None:
        """Close the primary router's resources."""
        await close_router(self.primary)


async def close_router(router: Router) -> None:
    """Release a router's connections, if it holds any."""
    closer = getattr(router, "aclose", None)
    if closer is not None:
        await closer()


def router_for(settings: RoutingSettings, *, client: httpx.AsyncClient | None = None) -> Router:
    """Return the router the settings ask for: OSRM when its URL is set, else a straight line."""
    straight = StraightLineRouter(
        detour_factor=settings.detour_factor, speeds_kmh=settings.speeds_kmh
    )
    if not settings.osrm_url:
        return straight
    osrm = OsrmRouter(
        settings.osrm_url,
        profiles=settings.osrm_profiles,
        timeout_s=settings.osrm_timeout_seconds,
        client=client,
    )
    return FallbackRouter(osrm, straight) if settings.osrm_fallback else osrm


class Located(Protocol):
    """Anything with a position (a `Hit`, a `Placed`, a tracked unit)."""

    @property
    def point(self) -> Point:
        """Where it is."""
        ...


L = TypeVar("L", bound=Located)


@dataclass(frozen=True)
class Ranked(Generic[L]):
    """A candidate with the route that ranked it."""

    candidate: L
    route: Route


async def rank_by_route(
    router: Router,
    origin: Point,
    candidates: Iterable[L],
    *,
    profile: str,
    by: Literal["duration", "distance"] = "duration",
    direction: Literal["from_origin", "to_origin"] = "from_origin",
    limit: int | None = None,
    concurrency: int = 8,
) -> list[Ranked[L]]:
    """Route to (or from) each candidate and return them best first; unroutable ones are left out.

    `direction="to_origin"` routes from each candidate to origin (units driving to an incident);
    the default routes from origin to each candidate (from an incident to hydrants).
    """
    listed: Sequence[L] = list(candidates)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(candidate: L) -> Ranked[L] | None:
        start, end = (
            (origin, candidate.point) if direction == "from_origin" else (candidate.point, origin)
        )
        async with gate:
            try:
                return Ranked(candidate, await router.route(start, end, profile=profile))
            except NoRoute as exc:
                log.info("candidate_unroutable", reason=str(exc))
                return None

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(c)) for c in listed]
    except ExceptionGroup as failures:
        # Callers handle a RoutingError, not a group of them: the first one says what is wrong.
        raise failures.exceptions[0] from None
    ranked = [r for r in (t.result() for t in tasks) if r is not None]

    def cost(item: Ranked[L]) -> tuple[float, float]:
        route = item.route
        if by == "distance":
            return (route.distance_m, route.duration_s)
        return (route.duration_s, route.distance_m)

    ranked.sort(key=cost)
    return ranked if limit is None else ranked[:limit]
