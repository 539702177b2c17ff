"""Jinja2 templates of the shell and the services, with translations and shared context."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import Response

from civic.kernel.boundaries import boundary_path
from civic.kernel.web import i18n
from civic.kernel.web.csrf import csrf_token

KST = ZoneInfo("Asia/Seoul")
SHELL_TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"


def _shell_context(request: Request) -> dict[str, Any]:
    kernel = request.app.state.kernel
    principal = getattr(request.state, "principal", None)
    return {
        "principal": principal,
        "csrf_token": csrf_token(request),
        "lang": getattr(request.state, "locale", kernel.settings.web.default_locale),
        "locales": kernel.settings.web.locales,
        "visible_services": [s for s in kernel.services if s.visible_to(principal)],
        "web": kernel.settings.web,
        "has_boundaries": lambda layer: boundary_path(kernel.settings.data_dir, layer) is not None,
    }


def _kst(moment: datetime) -> str:
    return moment.astimezone(KST).strftime("%Y-%m-%d %H:%M:%S")


def create_templates(service_dirs: dict[str, Path]) -> Jinja2Templates:
    """Build one template environment: the shell's, plus each service's under its name."""
    loader = ChoiceLoader(
        [
            FileSystemLoader(SHELL_TEMPLATES),
            PrefixLoader({name: FileSystemLoader(path) for name, path in service_dirs.items()}),
        ]
    )
    return Jinja2Templates(env=_environment(loader), context_processors=[_shell_context])


def _environment(loader: ChoiceLoader) -> Environment:
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
    )
    env.filters["kst"] = _kst
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render a page with the shell's context."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, template, context or {}, status_code=status_code, headers=headers
    )
