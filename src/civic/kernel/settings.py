"""Settings of the kernel parts; the root model in `civic.settings` extends them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "civic-development-secret-change-me"  # noqa: S105 - refused in production
VAR_DIR = Path("var")


class Environment(StrEnum):
    """Where the platform runs; production refuses development defaults."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class DatabaseSettings(BaseModel):
    """Relational database."""

    url: str = Field(
        default=f"sqlite+aiosqlite:///{VAR_DIR / 'civic.db'}",
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db.",
    )
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")
    pool_size: int = Field(default=10, ge=1, le=200, description="PostgreSQL connection pool size.")


class SecuritySettings(BaseModel):
    """Secrets, sessions, tokens and login protection."""

    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET),
        description="Signs CSRF tokens and citizen links; at least 32 characters in production.",
    )
    session_hours: float = Field(default=12, gt=0, description="Browser session lifetime in hours.")
    cookie_secure: bool = Field(
        default=False, description="Send cookies over HTTPS only (turn on behind TLS)."
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed logins per account or address before a lockout."
    )
    login_window_minutes: float = Field(
        default=15, gt=0, description="Window in which failed logins are counted."
    )
    citizen_link_hours: float = Field(
        default=24, gt=0, description="Default lifetime of a signed link sent to a citizen."
    )


class WebSettings(BaseModel):
    """HTTP server and pages."""

    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the HTTP server binds.")
    base_url: str = Field(
        default="http://127.0.0.1:8000", description="Public URL, used in links sent by SMS."
    )
    default_locale: str = Field(default="ko", description="Language of pages unless chosen.")
    locales: list[str] = Field(
        default=["ko", "en", "zh", "ja"], description="Languages offered on pages."
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes."
    )
    map_tile_url: str | None = Field(
        default=None,
        description="XYZ tile URL template of a tile server you run; none draws boundaries.",
    )
    map_center: tuple[float, float] = Field(
        default=(36.35, 127.8), description="Initial map centre (latitude, longitude)."
    )
    map_zoom: int = Field(default=7, ge=1, le=19, description="Initial map zoom.")


class KernelSettings(BaseSettings):
    """Kernel settings, read from CIVIC_* variables and an optional civic.toml."""

    model_config = SettingsConfigDict(
        env_prefix="CIVIC_",
        env_nested_delimiter="__",
        toml_file="civic.toml",
        extra="forbid",
    )

    env: Environment = Field(default=Environment.DEVELOPMENT, description="Run environment.")
    data_dir: Path | None = Field(
        default=None,
        description="Folder of public data (opendata/, geo/); ../shared/data when it exists.",
    )
    var_dir: Path = Field(default=VAR_DIR, description="Folder for the database, media and logs.")
    log_json: bool = Field(default=True, description="Write logs as JSON lines on stdout.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    web: WebSettings = Field(default_factory=WebSettings)
    services: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-service sections, validated by each service's own settings model.",
    )

    @classmethod
    def settings_customise_sources(  # noqa: D102 - pydantic-settings hook
        cls, settings_cls: type[BaseSettings], *args: Any, **kwargs: Any
    ) -> tuple[Any, ...]:
        from pydantic_settings import TomlConfigSettingsSource

        init, env, dotenv, secrets = args if args else kwargs.values()
        return init, env, TomlConfigSettingsSource(settings_cls), secrets

    @model_validator(mode="after")
    def _refuse_defaults_in_production(self) -> Self:
        if self.env is Environment.PRODUCTION:
            secret = self.security.secret_key.get_secret_value()
            if secret == DEVELOPMENT_SECRET or len(secret) < 32:
                raise ValueError(
                    "CIVIC_SECURITY__SECRET_KEY must be set to a random value of at least 32 "
                    "characters in production"
                )
        return self

    @model_validator(mode="after")
    def _find_shared_data(self) -> Self:
        if self.data_dir is None:
            shared = Path("..") / "shared" / "data"
            if shared.is_dir():
                self.data_dir = shared.resolve()
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite file."""
        return self.database.url.startswith("sqlite")
