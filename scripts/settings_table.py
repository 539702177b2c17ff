"""Print the configuration table of README.md from the settings models.

Run `.venv/bin/python scripts/settings_table.py` and paste its output into README.md, so that the
table always says what `civic.settings.Settings` reads: variable (CIVIC_ prefix, `__` between
nested names), default and description.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from civic.settings import Settings

PREFIX = str(Settings.model_config.get("env_prefix", "CIVIC_"))
NESTING = str(Settings.model_config.get("env_nested_delimiter", "__"))

# Defaults that are worked out at start, not fixed values.
COMPUTED = {
    "data_dir": "`../shared/data` when that folder exists, else none",
    "security.secret_key": "a development value (refused when `CIVIC_ENV=production`)",
}


def nested_model(field: FieldInfo) -> type[BaseModel] | None:
    """Return the settings model of a nested section, if field is one."""
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def shown(value: Any) -> str:
    """Write a default the way it would be written in the environment."""
    if value is None:
        return "none"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, list | tuple | dict):
        value = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
    return f"`{value}`"


def default_of(field: FieldInfo) -> Any:
    """Return a field's default, calling its factory when it has one."""
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def rows(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, str, str]]:
    """Yield (variable, default, description) for every leaf setting of model."""
    for name, field in model.model_fields.items():
        here = (*path, name)
        section = nested_model(field)
        if section is not None:
            yield from rows(section, here)
            continue
        dotted = ".".join(here)
        variable = PREFIX + NESTING.join(part.upper() for part in here)
        if name == "services" and not path:
            variable += f"{NESTING}<SERVICE>{NESTING}<FIELD>"
        default = COMPUTED.get(dotted) or shown(default_of(field))
        if default == "`{}`":
            default = "none"
        yield variable, default, field.description or ""


def cell(text: str) -> str:
    """Make text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    """Return the Markdown table of every setting."""
    lines = ["| variable | default | description |", "|---|---|---|"]
    for variable, default, description in rows(Settings):
        lines.append(f"| `{variable}` | {cell(default)} | {cell(description)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
