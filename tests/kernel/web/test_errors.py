from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from civic.app import create_app
from civic.kernel.services import Service
from civic.settings import Settings

api = APIRouter()
pages = APIRouter()


@api.get("/explode")
async def explode_api() -> None:
    raise RuntimeError("database fell over")


@pages.get("/explode")
async def explode_page() -> None:
    raise RuntimeError("database fell over")


@pytest.fixture
async def broken(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    service = Service(name="broken", title="고장", api=api, pages=pages)
    application: FastAPI = create_app(settings, services=[service])
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_an_unexpected_api_error_is_a_problem_without_internals(
    broken: httpx.AsyncClient,
) -> None:
    response = await broken.get("/api/broken/explode")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "database fell over" not in response.text
    assert response.json()["status"] == 500


async def test_an_unexpected_page_error_is_a_readable_page(broken: httpx.AsyncClient) -> None:
    response = await broken.get("/broken/explode", headers={"accept": "text/html"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "서버 오류가 발생했습니다" in response.text
    assert "database fell over" not in response.text
