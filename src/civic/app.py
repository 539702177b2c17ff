"""create_app: builds the kernel, loads the services and mounts their routes and pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

import civic
from civic.kernel.db import create_engine, create_sessionmaker
from civic.kernel.devices import DevicesPart
from civic.kernel.devices import api as devices_api
from civic.kernel.geo.part import GeoPart
from civic.kernel.incidents import IncidentsPart
from civic.kernel.incidents import api as incidents_api
from civic.kernel.incidents import pages as incidents_pages
from civic.kernel.logging import configure_logging
from civic.kernel.media import MediaPart
from civic.kernel.mqtt import MqttPart
from civic.kernel.notify import web as notify_web
from civic.kernel.notify.notifier import Notifier
from civic.kernel.realtime import Hub
from civic.kernel.realtime import endpoint as realtime_endpoint
from civic.kernel.relay import relay_for
from civic.kernel.runtime import Kernel, KernelPart
from civic.kernel.services import (
    Service,
    ServiceContext,
    ServiceError,
    check_unique,
    discover_services,
)
from civic.kernel.tracking import api as tracking_api
from civic.kernel.tracking import pages as tracking_pages
from civic.kernel.tracking.part import Tracker
from civic.kernel.web import admin, events_admin, health, identity_api, media_api, shell
from civic.kernel.web.csrf import CsrfCookieMiddleware
from civic.kernel.web.middleware import (
    BodyLimitMiddleware,
    LocaleMiddleware,
    RequestContextMiddleware,
)
from civic.kernel.web.problems import API_PROBLEMS, install_problem_handlers
from civic.kernel.web.templating import create_templates
from civic.kernel.workflow import WorkflowDeadlines
from civic.settings import Settings, load_settings

STATIC_DIR = Path(__file__).parent / "web" / "static"
log = structlog.get_logger("civic.app")


def create_app(
    settings: Settings | None = None, *, services: Sequence[Service] | None = None
) -> FastAPI:
    """Build the platform; services default to those registered as entry points."""
    settings = settings or load_settings()
    configure_logging(json=settings.log_json)
    loaded = check_unique(discover_services() if services is None else services)
    engine = create_engine(
        settings.database.url, echo=settings.database.echo, pool_size=settings.database.pool_size
    )
    kernel = Kernel(
        settings=settings, engine=engine, sessions=create_sessionmaker(engine), services=loaded
    )

    app = FastAPI(
        title="Civic",
        version=civic.__version__,
        description="스마트 공공서비스 플랫폼 API. 오류는 RFC 9457 problem details로 답합니다.",
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    kernel.parts = build_parts(settings)
    app.state.kernel = kernel
    app.state.templates = create_templates(
        {s.name: s.templates_dir for s in loaded if s.templates_dir is not None}
    )
    install_problem_handlers(app)
    app.add_middleware(
        LocaleMiddleware, offered=settings.web.locales, default=settings.web.default_locale
    )
    app.add_middleware(CsrfCookieMiddleware, secure=settings.security.cookie_secure)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.web.max_body_bytes,
        # Media has its own limits per type, checked on the bytes; let the largest through here.
        larger={"/api/media": max(settings.media.max_upload_bytes.values(), default=0)},
    )
    app.add_middleware(RequestContextMiddleware)

    for router in (health.router, shell.router, admin.router):
        app.include_router(router)
    app.include_router(realtime_endpoint.router)
    app.include_router(incidents_api.router, responses=API_PROBLEMS)
    app.include_router(incidents_pages.router)
    app.include_router(identity_api.router, responses=API_PROBLEMS)
    app.include_router(tracking_api.router, responses=API_PROBLEMS)
    app.include_router(tracking_pages.router)
    app.include_router(devices_api.router, responses=API_PROBLEMS)
    app.include_router(media_api.router, responses=API_PROBLEMS)
    app.include_router(notify_web.api, responses=API_PROBLEMS)
    app.include_router(notify_web.pages)
    app.include_router(events_admin.router)
    app.add_api_route("/api/docs", _api_docs, include_in_schema=False, response_class=HTMLResponse)
    for service in loaded:
        if service.api is not None:
            app.include_router(service.api, prefix=f"/api/{service.name}", responses=API_PROBLEMS)
        if service.pages is not None:
            app.include_router(service.pages, prefix=f"/{service.name}", include_in_schema=False)
        if service.static_dir is not None:
            app.mount(f"/static/{service.name}", StaticFiles(directory=service.static_dir))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def build_parts(settings: Settings) -> list[KernelPart]:
    """Build the kernel parts this configuration runs, in start order."""
    # The relay goes last so that services have subscribed before the backlog is delivered.
    return [
        Hub(settings.realtime),  # first: other parts may publish live messages as they start
        IncidentsPart(),
        GeoPart(settings.routing),  # spatial store and router, before the parts using them
        MqttPart(settings.mqtt),
        DevicesPart(settings.devices),  # after MQTT: routes its topics at start
        Tracker(settings.tracking),  # after the hub and MQTT, which it joins
        MediaPart(settings.media, var_dir=settings.var_dir),
        WorkflowDeadlines(settings.workflow),
        Notifier(settings.notify, env=settings.env, base_url=settings.web.base_url),
        relay_for(settings.bus, sqlite=settings.is_sqlite),  # in-process, or NATS with a url
    ]


async def _api_docs(request: Request) -> HTMLResponse:
    # Swagger UI is served from our own vendor folder: pages never reach a CDN.
    return get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="Civic API",
        swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/civic.svg",
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    kernel: Kernel = app.state.kernel
    started: list[Service] = []
    parts: list[KernelPart] = []
    try:
        early = [p for p in kernel.parts if not getattr(p, "start_after_services", False)]
        for part in early:
            await part.start(kernel)
            parts.append(part)
        for service in kernel.services:
            context = ServiceContext(
                kernel=kernel, settings=service.load_settings(kernel.settings.services)
            )
            kernel.contexts[service.name] = context
            if service.setup is not None:
                try:
                    await service.setup(context)
                except Exception as exc:
                    raise ServiceError(f"서비스 '{service.name}' 시작 실패: {exc!r}") from exc
            started.append(service)
        for part in kernel.parts:
            if part not in parts:
                await part.start(kernel)
                parts.append(part)
        log.info("started", services=[s.name for s in started])
        yield
    finally:
        for service in reversed(started):
            if service.teardown is not None:
                try:
                    await service.teardown(kernel.contexts[service.name])
                except Exception:
                    log.exception("teardown_failed", service=service.name)
        for part in reversed(parts):
            try:
                await part.stop()
            except Exception:
                log.exception("part_stop_failed", part=part.name)
        await kernel.engine.dispose()
