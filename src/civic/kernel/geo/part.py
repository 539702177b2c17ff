"""The geography kernel part: the platform's spatial store and router, for every service."""

from __future__ import annotations

import structlog

from civic.kernel.geo.postgis import PostgisSpatialStore
from civic.kernel.geo.store import InMemorySpatialStore, SpatialStore
from civic.kernel.routing import Router, close_router, router_for
from civic.kernel.runtime import Kernel
from civic.kernel.settings import RoutingSettings

log = structlog.get_logger("civic.geo")


class GeoPart:
    """Kernel part holding the spatial store (PostGIS when the database has it) and the router."""

    name = "geo"

    def __init__(self, settings: RoutingSettings) -> None:
        """Build the router from the routing settings; the store is chosen at start."""
        self.router: Router = router_for(settings)
        self.store: SpatialStore = InMemorySpatialStore()

    async def start(self, kernel: Kernel) -> None:
        """Use PostGIS when the database is PostgreSQL with PostGIS, else memory."""
        postgis = await PostgisSpatialStore.connect(kernel.engine)
        if postgis is not None:
            self.store = postgis
        elif kernel.engine.dialect.name == "postgresql":
            log.warning("spatial_store_in_memory", reason="PostGIS is not available")
        log.info("geo_started", store=self.store.kind, router=type(self.router).__name__)

    async def stop(self) -> None:
        """Close the router's connections."""
        await close_router(self.router)


def geo_of(kernel: Kernel) -> GeoPart:
    """Return the running geography part: `geo_of(kernel).store`, `geo_of(kernel).router`."""
    return kernel.part("geo", GeoPart)
