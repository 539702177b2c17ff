"""Liveness and readiness for operators and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from civic.kernel import migrations
from civic.kernel.web.deps import kernel_of

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Answer while the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Answer 200 when the database answers and its schema is at the newest migration."""
    kernel = kernel_of(request)
    checks: dict[str, str] = {}
    try:
        async with kernel.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
        heads = migrations.head_revisions()
        current = await migrations.current_revisions(kernel.engine)
        checks["migrations"] = (
            "ok" if current == heads else f"at {sorted(current)}, newest {sorted(heads)}"
        )
    except Exception as exc:  # noqa: BLE001 - any failure means not ready, and says why
        checks["database"] = f"unreachable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values()) and len(checks) == 2
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
