"""Demo data: organisations and accounts to try every role, from real data when it is there."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civic.kernel.identity import (
    ALL_SERVICES,
    Organisation,
    OrganisationKind,
    Role,
    create_organisation,
    create_user,
    find_user,
)

DEMO_PASSWORD = "civic-demo-2026"  # noqa: S105 - printed for people trying the demo


@dataclass(frozen=True)
class DemoAccount:
    """A demo login and what it is for."""

    username: str
    display_name: str
    organisation_code: str
    roles: dict[str, list[Role]]
    phone: str | None = None


BUILT_IN_ORGANISATIONS = [
    ("gn-fire", "경상남도소방본부", OrganisationKind.FIRE_HQ),
    ("seoul-yangcheon", "서울특별시 양천구청", OrganisationKind.DISTRICT_OFFICE),
    ("jeju-city", "제주특별자치도 제주시청", OrganisationKind.DISTRICT_OFFICE),
    ("mois-centre", "행정안전부 중앙재난안전상황실", OrganisationKind.MINISTRY_CENTRE),
]

ACCOUNTS = [
    DemoAccount(
        "admin", "관리자 (경남소방)", "gn-fire", {ALL_SERVICES: [Role.ADMIN]}, "010-1000-0001"
    ),
    DemoAccount(
        "dispatcher",
        "김상황 (119종합상황실)",
        "gn-fire",
        {
            "smart119": [Role.DISPATCHER],
            "incidents": [Role.DISPATCHER],
            "tracking": [Role.DISPATCHER],
        },
        "010-1000-0002",
    ),
    DemoAccount(
        "crew",
        "박출동 (창원119안전센터)",
        "gn-fire",
        {
            "smart119": [Role.CREW],
            "hydrants": [Role.CREW],
            "incidents": [Role.CREW],
            "tracking": [Role.CREW],
        },
        "010-1000-0003",
    ),
    DemoAccount(
        "yc-admin",
        "관리자 (양천구)",
        "seoul-yangcheon",
        {ALL_SERVICES: [Role.ADMIN]},
        "010-2000-0001",
    ),
    DemoAccount(
        "yc-officer",
        "이단속 (양천구 교통행정과)",
        "seoul-yangcheon",
        {"schoolzone": [Role.OFFICER]},
        "010-2000-0002",
    ),
    DemoAccount(
        "jeju-clerk",
        "고민원 (제주시 민원실)",
        "jeju-city",
        {"formhelper": [Role.CLERK]},
        "010-3000-0001",
    ),
    DemoAccount(
        "mois-operator",
        "정관제 (중앙재난안전상황실)",
        "mois-centre",
        {"situation": [Role.OPERATOR]},
        "010-4000-0001",
    ),
]


def fire_headquarters(data_dir: Path | None) -> list[tuple[str, str, OrganisationKind]]:
    """Fire HQs named in the real 119 safety centre list, when the data folder has it."""
    if data_dir is None:
        return []
    path = data_dir / "opendata" / "fire_119_safety_centres.csv"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as file:
        regions = sorted(
            {row["시도본부"].strip() for row in csv.DictReader(file) if row.get("시도본부")}
        )
    return [
        (f"fire-hq-{index:02d}", f"{region}소방본부", OrganisationKind.FIRE_HQ)
        for index, region in enumerate(regions, start=1)
        if f"{region}소방본부" != "경상남도소방본부"
    ]


async def load_demo(session: AsyncSession, *, data_dir: Path | None) -> list[DemoAccount]:
    """Create the demo organisations and accounts that are not there yet; return new accounts."""
    organisations = {org.code: org for org in (await session.scalars(select(Organisation))).all()}
    for code, name, kind in BUILT_IN_ORGANISATIONS + fire_headquarters(data_dir):
        if code not in organisations:
            organisations[code] = await create_organisation(
                session, code=code, name=name, kind=kind
            )
    created: list[DemoAccount] = []
    for account in ACCOUNTS:
        if await find_user(session, username=account.username) is None:
            await create_user(
                session,
                organisation=organisations[account.organisation_code],
                username=account.username,
                display_name=account.display_name,
                password=DEMO_PASSWORD,
                roles=account.roles,
                phone=account.phone,
            )
            created.append(account)
    return created
