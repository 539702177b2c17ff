"""Real points from the public data folder: Songpa's fire-water facilities (hydrants)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from civic.kernel.geo.index import Placed
from civic.kernel.geo.points import GeoError, Point

log = structlog.get_logger("civic.geo")
FIRE_WATER_FACILITIES = Path("opendata") / "songpa_fire_water_facilities.csv"
# 사용구분: 양호 (good) and 고장(사용가) (faulty but usable) can feed a hose; 고장(사용불) and
# 임시폐전 (temporarily closed) cannot.
USABLE_STATES = frozenset({"양호", "고장(사용가)"})


@dataclass
class LoadedPoints:
    """Points read from a file, and the rows that were skipped with the reason of each."""

    points: list[Placed] = field(default_factory=list)
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


def fire_water_facilities_path(data_dir: Path | None) -> Path | None:
    """Return the Songpa fire-water facilities CSV when the data folder has it."""
    if data_dir is None:
        return None
    path = data_dir / FIRE_WATER_FACILITIES
    return path if path.is_file() else None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def load_fire_water_facilities(path: Path) -> LoadedPoints:
    """Read hydrants, water towers and tanks (WGS84 columns 경위도X/Y) keyed by 일련번호."""
    loaded = LoadedPoints()
    seen: set[str] = set()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            key = (row.get("일련번호") or "").strip()
            try:
                if not key:
                    raise GeoError("no serial number (일련번호)")
                if key in seen:
                    raise GeoError(f"serial number {key} appears twice")
                lat, lon = _number(row.get("경위도Y")), _number(row.get("경위도X"))
                if lat is None or lon is None:
                    raise GeoError("no WGS84 coordinates (경위도X, 경위도Y)")
                point = Point(lat=lat, lon=lon)
            except GeoError as exc:
                loaded.skipped += 1
                loaded.problems.append(f"{path.name}:{line}: {exc}")
                continue
            seen.add(key)
            loaded.points.append(Placed(key, point, _attributes(row)))
    if loaded.skipped:
        log.warning(
            "rows_skipped", file=path.name, skipped=loaded.skipped, first=loaded.problems[0]
        )
    return loaded


def _attributes(row: dict[str, str]) -> dict[str, Any]:
    state = (row.get("사용구분") or "").strip()
    address = " ".join(
        part
        for part in (row.get("도로명"), row.get("건물본번"))
        if part and part.strip() not in ("", "0")
    )
    return {
        "kind": (row.get("용수구분") or "").strip(),  # 소화전 / 급수탑 / 저수조
        "form": (row.get("용수형식") or "").strip(),  # 지상식 / 지하식 / 다용도소화전
        "state": state,
        "usable": state in USABLE_STATES,
        "pressure": _number(row.get("수압")),
        "public": (row.get("공설구분") or "").strip() == "공설",
        "centre": (row.get("안전센터") or "").strip(),
        "address": address,
    }
