"""The `civic` command: run the platform, migrate the database, load demo data."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
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
sim_app = typer.Typer(help="시뮬레이터 (simulators)", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
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


evidence_app = typer.Typer(help="증거 기록 (evidence chain)", no_args_is_help=True)
app.add_typer(evidence_app, name="evidence")


@evidence_app.command("verify")
def evidence_verify(
    packet: Annotated[
        Path | None, typer.Option(help="check an exported zip packet instead of the database")
    ] = None,
    from_seq: Annotated[int, typer.Option(min=1, help="first record of the chain to check")] = 1,
) -> None:
    """Recompute every evidence hash and re-hash its files; exit 1 at the first change."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from civic.kernel.media import ChainReport, build_store, verify_chain, verify_packet

    settings = _settings()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("증거 확인 (verifying)", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        async def work(engine: AsyncEngine) -> ChainReport:
            store = build_store(settings.media, var_dir=settings.var_dir)
            try:
                async with create_sessionmaker(engine)() as session:
                    return await verify_chain(
                        session, store=store, from_seq=from_seq, on_progress=advance
                    )
            finally:
                await store.close()

        report = (
            verify_packet(packet, on_progress=advance)
            if packet is not None
            else _with_engine(settings, work)
        )
    if report.broken is not None:
        where = f"#{report.broken.seq} " if report.broken.seq is not None else ""
        console.print(f"[red]변조 발견 (tampering): {where}{report.broken.kind}[/red]")
        console.print(report.broken.detail)
        raise typer.Exit(1)
    console.print(
        f"[green]이상 없음 (intact)[/green]: 기록 {report.records}개 · 파일 {report.files}개"
        f" · 마지막 해시 {report.head_hash or '-'}"
    )


@sim_app.command("tracking")
def sim_tracking(
    units: Annotated[int, typer.Option(min=1, max=100_000, help="how many units move")] = 20,
    kind: Annotated[str, typer.Option(help="fire_unit, ambulance, vehicle, drone, watch, ...")] = (
        "fire_unit"
    ),
    via: Annotated[str, typer.Option(help="http (batches) or mqtt (one message each)")] = "http",
    seconds: Annotated[float, typer.Option(min=1, help="how long to run")] = 60,
    interval: Annotated[float, typer.Option(min=0.05, help="seconds between reports")] = 1.0,
    token: Annotated[
        str | None, typer.Option(envvar="CIVIC_SIM_TOKEN", help="device bearer token (http)")
    ] = None,
    organisation: Annotated[str | None, typer.Option(help="organisation code (mqtt)")] = None,
    url: Annotated[str | None, typer.Option(help="server URL (default web.base_url)")] = None,
    mqtt_url: Annotated[str | None, typer.Option(help="broker URL (default mqtt settings)")] = None,
    centre: Annotated[str | None, typer.Option(help="lat,lon (default the map centre)")] = None,
    radius_km: Annotated[float, typer.Option(min=0.1, help="area they drive in")] = 5.0,
    seed: Annotated[int | None, typer.Option(help="random seed, to repeat a run")] = None,
) -> None:
    """Move units along their way and report positions over HTTP or MQTT, like real devices."""
    from civic.kernel.tracking.sim import run_simulation

    settings = _settings()
    try:
        sent = asyncio.run(
            run_simulation(
                settings,
                units=units,
                kind=kind,
                via=via,
                seconds=seconds,
                interval=interval,
                token=token,
                organisation=organisation,
                url=url,
                mqtt_url=mqtt_url,
                centre=centre,
                radius_km=radius_km,
                seed=seed,
                say=console.print,
            )
        )
    except (ValueError, RuntimeError, OSError) as exc:
        console.print(f"[red]시뮬레이션 실패 (simulation failed):[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"위치 {sent}개를 보냈습니다 ({units} {kind}, {via}).")


@sim_app.command("devices")
def sim_devices(
    organisation: Annotated[str, typer.Option(help="organisation code the devices belong to")],
    count: Annotated[int, typer.Option(min=1, max=100_000, help="how many devices")] = 20,
    kind: Annotated[str, typer.Option(help="sensor or switch")] = "sensor",
    seconds: Annotated[float, typer.Option(min=1, help="how long to run")] = 60,
    interval: Annotated[float, typer.Option(min=0.01, help="seconds between readings")] = 5.0,
    anomalies: Annotated[
        float, typer.Option(min=0, max=1, help="chance a reading starts an anomaly")
    ] = 0.01,
    mqtt_url: Annotated[str | None, typer.Option(help="broker URL (default mqtt settings)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed, to repeat a run")] = None,
) -> None:
    """Register simulated devices and publish their telemetry over MQTT; answer commands."""
    from civic.kernel.devices.sim import broker_url, prepare_devices, run_devices

    settings = _settings()

    async def work() -> int:
        devices = await prepare_devices(
            settings, organisation_code=organisation, kind=kind, count=count, seed=seed
        )
        url = broker_url(settings, mqtt_url)
        console.print(f"장치 {len(devices)}개 → {url} ({kind}, {interval}s 간격)")
        return await run_devices(
            devices,
            url=url,
            seconds=seconds,
            interval=interval,
            anomaly_rate=anomalies,
            say=console.print,
        )

    try:
        sent = asyncio.run(work())
    except (ValueError, RuntimeError, OSError) as exc:
        console.print(f"[red]시뮬레이션 실패 (simulation failed):[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"측정값 {sent}개를 보냈습니다 ({count} {kind}).")


notify_app = typer.Typer(help="알림 (notifications)", no_args_is_help=True)
app.add_typer(notify_app, name="notify")


@notify_app.command("send")
def notify_send(
    text: Annotated[str, typer.Option(help="the message")],
    title: Annotated[str, typer.Option(help="title (push, e-mail subject)")] = "Civic",
    phone: Annotated[str | None, typer.Option(help="mobile phone number")] = None,
    email: Annotated[str | None, typer.Option(help="e-mail address")] = None,
    user: Annotated[str | None, typer.Option(help="user name (for push and preferences)")] = None,
    link: Annotated[str | None, typer.Option(help="link to add")] = None,
    channel: Annotated[
        list[str] | None, typer.Option(help="push, sms, messenger, email, dev_inbox (repeat)")
    ] = None,
    emergency: Annotated[bool, typer.Option(help="every reachable channel, never held")] = False,
) -> None:
    """Send one message now through the configured channels and show how each went."""
    from civic.kernel.notify import NotifyError, NotifyTemplateError, Recipient, Urgency
    from civic.kernel.notify.once import send_once

    settings = _settings()

    async def work() -> list[tuple[str, str, str, str]]:
        user_id = None
        if user is not None:
            engine = create_engine(settings.database.url)
            try:
                async with create_sessionmaker(engine)() as session:
                    found = await find_user(session, username=user)
            finally:
                await engine.dispose()
            if found is None:
                raise NotifyError(f"사용자 '{user}'가 없습니다 (no such user)")
            user_id = found.id
        deliveries = await send_once(
            settings,
            recipient=Recipient(user_id=user_id, phone=phone, email=email),
            template="generic",
            context={"title": title, "text": text, "link": link or ""},
            urgency=Urgency.EMERGENCY if emergency else Urgency.NORMAL,
            channels=channel or None,
        )
        return [(d.channel, d.transport, d.status, d.last_error or "") for d in deliveries]

    try:
        rows = asyncio.run(work())
    except (ValidationError, NotifyError, NotifyTemplateError) as exc:
        console.print(f"[red]보낼 수 없습니다 (cannot send):[/red] {exc}")
        raise typer.Exit(2) from exc
    table = Table("channel", "transport", "status", "error")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if not any(status == "sent" for _, _, status, _ in rows):
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the `civic` command."""
    app()
