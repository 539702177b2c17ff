"""Administrative boundary files in the data folder, drawn by maps that have no tile server."""

from __future__ import annotations

from pathlib import Path

LAYERS = {
    "provinces": "kr_provinces_2013.geojson",
    "municipalities": "kr_municipalities_2013.geojson",
}


def boundary_path(data_dir: Path | None, layer: str) -> Path | None:
    """Return the GeoJSON file of a layer when the data folder has it."""
    name = LAYERS.get(layer)
    if data_dir is None or name is None:
        return None
    path = data_dir / "geo" / name
    return path if path.is_file() else None
