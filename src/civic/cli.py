"""The `civic` command: run the platform, migrate the database, load demo data."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from civic.kernel import migrations
from civic.kernel.db import create_engine, create_sessionmaker, transaction
from civic.kernel.identity import (
    ALL_SERVICES,
    Organisation,
    Role,
    create_user,
    find_user,
    issue_api_token,
)
from civic.kernel.settings import Environment
from civic.settings import Settings, load_settings

app = typer.Typer(help="Civic: 스마트 공공서비스 플랫폼", no_args_is_help=True)
db_app = typer.Typer(help="데이터베이스 (database) migrations", no_args_is_help=True)
demo_app = typer.Typer(help="데모 데이터 (demo data)", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
users_app = typer.Typer(help="사용자와 토큰 (users and API tokens)", no_args_is_help=True)
app.add_typer(users_app, name="users")
console = Console()
T = TypeVar("T")


def _settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        console.print(f"[red]설정 오류 (settings error):[/red]\n{exc}")
        raise typer.Exit(2) from exc


def _with_engine(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings.database.url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "heads") -> None:
    """Bring the schema up to a revision (default: the newest)."""
    settings = _settings()
    _with_engine(settings, lambda engine: migrations.upgrade(engine, revision))
    current = ", ".join(sorted(_with_engine(settings, migrations.current_revisions)))
    where = settings.database.url.split("@")[-1]
    console.print(f"데이터베이스 스키마: [bold]{current}[/bold] ({where})")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="target, e.g. base or -1")]) -> None:
    """Take the schema down to a revision."""
    settings = _settings()
    _with_engine(settings, lambda engine: migrations.downgrade(engine, revision))
    current = ", ".join(sorted(_with_engine(settings, migrations.current_revisions))) or "base"
    console.print(f"데이터베이스 스키마: {current}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision and whether it is the newest."""
    settings = _settings()
    current = _with_engine(settings, migrations.current_revisions)
    heads = migrations.head_revisions()
    state = "최신입니다" if current == heads else "upgrade 필요"
    console.print(f"현재 {', '.join(sorted(current))} · 최신 {', '.join(sorted(heads))} · {state}")


@demo_app.command("load")
def demo_load() -> None:
    """Create demo organisations and accounts (not in production)."""
    from civic.demo import ACCOUNTS, DEMO_PASSWORD, load_demo

    settings = _settings()
    if settings.env is Environment.PRODUCTION:
        console.print("[red]운영 환경(production)에는 데모 데이터를 넣지 않습니다.[/red]")
        raise typer.Exit(2)

    async def work(engine: AsyncEngine) -> int:
        async with transaction(create_sessionmaker(engine)) as session:
            return len(await load_demo(session, data_dir=settings.data_dir))

    created = _with_engine(settings, work)
    source = settings.data_dir or "생성한 데모 데이터 (generated demo set)"
    console.print(f"데모 데이터: 새 계정 {created}개 · 데이터 폴더 {source}")
    table = Table(title=f"데모 계정 (비밀번호 {DEMO_PASSWORD})")
    for column in ("아이디", "이름", "역할"):
        table.add_column(column)
    for account in ACCOUNTS:
        roles = ", ".join(
            f"{svc}:{'/'.join(r.value for r in rs)}" for svc, rs in account.roles.items()
        )
        table.add_row(account.username, account.display_name, roles)
    console.print(table)


def _parse_roles(specs: list[str]) -> dict[str, list[Role]]:
    roles: dict[str, list[Role]] = {}
    for spec in specs:
        service, _, role = spec.partition(":")
        try:
            roles.setdefault(service or ALL_SERVICES, []).append(Role(role))
        except ValueError as exc:
            known = ", ".join(r.value for r in Role)
            raise typer.BadParameter(f"{spec!r}: 역할은 서비스:역할 형식 ({known})") from exc
    return roles


@users_app.command("create")
def users_create(
    organisation: Annotated[str, typer.Option(help="organisation code, e.g. gn-fire")],
    username: Annotated[str, typer.Option(help="login name")],
    display_name: Annotated[str, typer.Option(help="name shown to people")],
    role: Annotated[list[str], typer.Option(help="service:role, repeatable; *:admin for all")],
    device: Annotated[
        bool, typer.Option(help="a device account (token only, no password)")
    ] = False,
    phone: Annotated[str | None, typer.Option(help="mobile number for alerts")] = None,
) -> None:
    """Create a person (asks for a password) or a device account."""
    settings = _settings()
    roles = _parse_roles(role)
    password = (
        None if device else typer.prompt("비밀번호", hide_input=True, confirmation_prompt=True)
    )

    async def work(engine: AsyncEngine) -> str:
        async with transaction(create_sessionmaker(engine)) as session:
            org = await session.scalar(
                select(Organisation).where(Organisation.code == organisation)
            )
            if org is None:
                raise typer.BadParameter(f"기관 코드 {organisation!r}가 없습니다.")
            if await find_user(session, username=username) is not None:
                raise typer.BadParameter(f"아이디 {username!r}는 이미 있습니다.")
            user = await create_user(
                session,
                organisation=org,
                username=username,
                display_name=display_name,
                password=password,
                roles=roles,
                phone=phone,
                is_device=device,
            )
            return user.id

    console.print(f"만들었습니다: {username} ({_with_engine(settings, work)})")


@users_app.command("token")
def users_token(
    username: Annotated[str, typer.Argument(help="the user or device the token acts as")],
    name: Annotated[str, typer.Option(help="what the token is for")],
    days: Annotated[int, typer.Option(min=1, max=3650, help="days until it expires")] = 365,
) -> None:
    """Issue a bearer token for an API client or a device; it is shown once."""
    settings = _settings()

    async def work(engine: AsyncEngine) -> str:
        async with transaction(create_sessionmaker(engine)) as session:
            user = await find_user(session, username=username)
            if user is None:
                raise typer.BadParameter(f"아이디 {username!r}가 없습니다.")
            return await issue_api_token(
                session, user=user, name=name, valid_for=timedelta(days=days)
            )

    console.print(f"토큰 (한 번만 보여 줍니다): [bold]{_with_engine(settings, work)}[/bold]")


@app.command("run")
def run(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Serve the platform over HTTP."""
    import uvicorn

    settings = _settings()
    host = host or settings.web.host
    port = port or settings.web.port
    console.print(f"Civic: [bold]http://{host}:{port}[/bold]  (API 문서 /api/docs)")
    uvicorn.run("civic.app:create_app", factory=True, host=host, port=port, log_config=None)


def main() -> None:
    """Entry point of the `civic` command."""
    app()
