"""Settings of the kernel parts; the root model in `civic.settings` extends them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

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


class MqttSettings(BaseModel):
    """MQTT broker that devices publish to."""

    url: str | None = Field(
        default=None,
        description="Broker URL mqtt://[user:pass@]host:port (mqtts:// for TLS); "
        "unset starts an embedded amqtt broker in the process.",
    )
    embedded_host: str = Field(
        default="127.0.0.1", description="Address the embedded broker binds when url is unset."
    )
    embedded_port: int = Field(
        default=1884,
        ge=0,
        le=65535,
        description="Port of the embedded broker (0 picks a free one); 1883 is left to Mosquitto.",
    )
    client_id_prefix: str = Field(
        default="civic", description="Prefix of the MQTT client id of this process."
    )


class DevicesSettings(BaseModel):
    """Device telemetry ingest, time series, alarms and commands."""

    batch_size: int = Field(
        default=1000, ge=1, le=20000, description="Most telemetry messages stored per transaction."
    )
    queue_size: int = Field(
        default=100_000, ge=100, description="Messages waiting for storage before MQTT is slowed."
    )
    batch_wait_ms: float = Field(
        default=20,
        ge=0,
        le=1000,
        description="How long a small batch waits for more messages before it is stored.",
    )
    require_signature: bool = Field(
        default=True,
        description="MQTT telemetry must carry the device's HMAC 'sig'; turn off only behind "
        "a broker that enforces per-device ACLs.",
    )
    raw_retention_days: float = Field(
        default=30, gt=0, description="Days raw samples are kept; rollups are kept for good."
    )
    escalate_after_minutes: float = Field(
        default=15, gt=0, description="Minutes an alarm may stay unacknowledged before escalation."
    )
    command_timeout_seconds: float = Field(
        default=300, gt=0, description="Seconds a command waits for the device's acknowledgement."
    )
    check_seconds: float = Field(
        default=5, gt=0, description="Interval of the silence, escalation and expiry checks."
    )


def _default_silence() -> dict[str, float]:
    return {
        "fire_unit": 120,
        "ambulance": 120,
        "vehicle": 300,
        "drone": 30,
        "collaborator": 600,
        "watch": 600,
        "ankle_device": 180,
    }


class TrackingSettings(BaseModel):
    """Live positions: ingest, history retention and lost-signal alarms."""

    history_days: float = Field(
        default=30, gt=0, description="Days reported positions are kept; older ones are purged."
    )
    purge_minutes: float = Field(
        default=60, gt=0, description="Minutes between purges of positions past retention."
    )
    lost_after_seconds: dict[str, float] = Field(
        default_factory=_default_silence,
        description="Silence per kind (fire_unit, watch, ...) after which the signal counts as "
        "lost; kinds not named use default_lost_after_seconds.",
    )
    default_lost_after_seconds: float = Field(
        default=300, gt=0, description="Silence after which the signal of any other kind is lost."
    )
    check_seconds: float = Field(default=5, gt=0, description="Interval of the lost-signal check.")
    future_tolerance_seconds: float = Field(
        default=30, ge=0, description="How far ahead of the server clock a device time may be."
    )
    flush_seconds: float = Field(
        default=1, gt=0, description="Longest wait before received positions are stored."
    )
    last_position_seconds: float = Field(
        default=10,
        gt=0,
        description="Longest time the stored last position of a subject may lag behind the live "
        "one (history is stored within flush_seconds; this saves rewriting every subject).",
    )
    flush_batch: int = Field(
        default=5000, ge=1, le=100_000, description="Most positions stored per transaction."
    )
    max_pending: int = Field(
        default=500_000,
        ge=1000,
        description="Positions waiting for storage before the oldest are dropped from history.",
    )


class RealtimeSettings(BaseModel):
    """Live updates pushed to browsers over the WebSocket hub."""

    buffer_size: int = Field(
        default=1000, ge=10, le=100_000, description="Messages kept per topic for resuming clients."
    )
    buffer_seconds: float = Field(
        default=600, gt=0, description="Seconds a kept message may be replayed on resuming."
    )
    send_queue: int = Field(
        default=1000,
        ge=4,
        le=100_000,
        description="Messages waiting per connection; positions are dropped first when full.",
    )
    max_topics: int = Field(
        default=200, ge=1, le=10_000, description="Topics one connection may subscribe to."
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed besides web.base_url and the request's own host.",
    )
    nats_url: str | None = Field(
        default=None,
        description="nats:// server through which hubs of several processes share live messages; "
        "unset uses the bus's NATS server if it has one, else keeps them in this process.",
    )


def _default_upload_limits() -> dict[str, int]:
    return {
        "image/*": 20 * 1024 * 1024,
        "video/*": 200 * 1024 * 1024,
        "audio/*": 50 * 1024 * 1024,
        "application/pdf": 20 * 1024 * 1024,
    }


def _default_media_types() -> list[str]:
    return [
        "image/jpeg",
        "image/png",
        "image/webp",
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "audio/mpeg",
        "audio/x-wav",
        "audio/ogg",
        "audio/mp4",
        "application/pdf",
    ]


class MediaSettings(BaseModel):
    """Photos, videos and documents: where they are stored, and what uploads are accepted."""

    backend: Literal["local", "s3"] = Field(
        default="local", description="Where media files are kept: a local folder or S3."
    )
    folder: Path | None = Field(
        default=None, description="Folder of the local store; unset means var_dir/media."
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="URL of the S3-compatible server (MinIO, Ceph, AWS, ...)."
    )
    s3_bucket: str = Field(default="civic-media", description="Bucket that holds media files.")
    s3_region: str = Field(default="us-east-1", description="Region name sent to the S3 server.")
    s3_access_key: SecretStr | None = Field(default=None, description="S3 access key id.")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret access key.")
    max_upload_bytes: dict[str, int] = Field(
        default_factory=_default_upload_limits,
        description="Largest upload per content type ('image/png') or family ('image/*'); "
        "uploads to /api/media may exceed web.max_body_bytes up to the largest of these.",
    )
    allowed_types: list[str] = Field(
        default_factory=_default_media_types,
        description="Content types accepted, judged from the file's bytes, not its name or header.",
    )
    thumbnail_px: int = Field(
        default=320, ge=32, le=2048, description="Longest side of thumbnails and poster frames."
    )


class WorkflowSettings(BaseModel):
    """State machines of requests and applications."""

    deadline_check_seconds: float = Field(
        default=30, gt=0, description="Interval of the check that reports missed deadlines."
    )


NotifyChannel = Literal["push", "sms", "messenger", "email", "dev_inbox"]


class SmsSettings(BaseModel):
    """SMS through an HTTP gateway."""

    gateway_url: str | None = Field(
        default=None, description="URL the SMS gateway takes JSON messages at; unset: dev inbox."
    )
    api_key: SecretStr | None = Field(default=None, description="API key sent as X-Api-Key.")
    sender: str = Field(default="", description="Registered sender number shown to recipients.")


class MessengerSettings(BaseModel):
    """Messages through a KakaoTalk-channel-style webhook."""

    webhook_url: str | None = Field(
        default=None, description="URL of the messenger webhook; unset: dev inbox."
    )
    api_key: SecretStr | None = Field(default=None, description="API key sent as X-Api-Key.")
    sender_key: str = Field(default="", description="Sender (channel) key of the messenger.")


class WebPushSettings(BaseModel):
    """Web Push to browsers that subscribed, signed with VAPID."""

    vapid_private_key: SecretStr | None = Field(
        default=None,
        description="VAPID private key (PEM, or base64url raw/DER); unset: pushes go to the dev "
        "inbox.",
    )
    vapid_subject: str = Field(
        default="mailto:notify@civic.invalid",
        description="Contact (mailto: or https:) the push services see in the VAPID claims.",
    )
    ttl_seconds: int = Field(
        default=3600, ge=0, le=2_419_200, description="How long a push service keeps a push."
    )


class EmailSettings(BaseModel):
    """E-mail through an SMTP server."""

    smtp_host: str | None = Field(
        default=None, description="SMTP server host; unset: e-mails go to the dev inbox."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP server port.")
    username: str | None = Field(default=None, description="SMTP login, if the server wants one.")
    password: SecretStr | None = Field(default=None, description="SMTP password.")
    tls: Literal["none", "starttls", "tls"] = Field(
        default="starttls", description="Plain, STARTTLS, or TLS from the first byte."
    )
    sender: str = Field(default="Civic <notify@civic.invalid>", description="From address.")


class NotifySettings(BaseModel):
    """Notifications: channels, endpoints, retries, quiet hours and the development inbox."""

    channels: list[NotifyChannel] = Field(
        default=["push", "sms", "messenger", "email"],
        description="Enabled channels, in the order tried for recipients who chose none.",
    )
    dev_inbox: bool | None = Field(
        default=None,
        description="Keep messages of channels without an endpoint in /dev/inbox; unset means "
        "on except in production.",
    )
    allow_dev_inbox_in_production: bool = Field(
        default=False, description="Let dev_inbox=true stand in production (a demo server)."
    )
    sms: SmsSettings = Field(default_factory=SmsSettings)
    messenger: MessengerSettings = Field(default_factory=MessengerSettings)
    push: WebPushSettings = Field(default_factory=WebPushSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    retry_attempts: int = Field(
        default=5, ge=1, le=50, description="Tries of one channel before it counts as failed."
    )
    retry_first_delay_seconds: float = Field(
        default=30, gt=0, description="Wait before the first retry; each next wait is longer."
    )
    emergency_first_delay_seconds: float = Field(
        default=5, gt=0, description="Wait before the first retry of an emergency message."
    )
    retry_factor: float = Field(default=4, ge=1, description="Factor between successive waits.")
    retry_max_delay_seconds: float = Field(
        default=3600, gt=0, description="Longest wait between two tries."
    )
    quiet_hours: str | None = Field(
        default=None,
        pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$",
        description="Quiet hours (e.g. 22:00-07:00) for recipients who chose none; emergencies "
        "are never held.",
    )
    timezone: str = Field(default="Asia/Seoul", description="Time zone of quiet hours.")
    worker: bool = Field(default=True, description="Send queued notifications from this process.")
    poll_seconds: float = Field(
        default=1.0, gt=0, description="Longest wait of the sender between looks at the outbox."
    )
    batch: int = Field(default=100, ge=1, le=5000, description="Notifications claimed at once.")
    concurrency: int = Field(default=8, ge=1, le=256, description="Sends in flight at once.")
    lease_seconds: float = Field(
        default=120, gt=0, description="After this, a send whose process died is tried again."
    )
    http_timeout_seconds: float = Field(
        default=10, gt=0, description="Timeout of one call to a gateway, webhook or SMTP server."
    )

    @model_validator(mode="after")
    def _known_time_zone(self) -> Self:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r} (e.g. Asia/Seoul)") from exc
        return self

    def dev_inbox_on(self, env: Environment) -> bool:
        """Whether the development inbox takes the messages of channels without an endpoint."""
        return self.dev_inbox if self.dev_inbox is not None else env is not Environment.PRODUCTION

    def check_for(self, env: Environment) -> None:
        """Refuse the development inbox in production unless it was explicitly allowed."""
        allowed = self.allow_dev_inbox_in_production
        if env is Environment.PRODUCTION and self.dev_inbox and not allowed:
            raise ValueError(
                "CIVIC_NOTIFY__DEV_INBOX=true keeps real people's messages in /dev/inbox; "
                "in production also set CIVIC_NOTIFY__ALLOW_DEV_INBOX_IN_PRODUCTION=true, "
                "or configure the channels' endpoints"
            )


class BusSettings(BaseModel):
    """Event bus: the outbox relay, in process or through NATS JetStream."""

    url: str | None = Field(
        default=None,
        pattern=r"^(nats|tls)://",
        description="nats:// URL of a NATS server with JetStream, for several processes or "
        "machines; unset delivers events in this process.",
    )
    stream: str = Field(
        default="CIVIC",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="JetStream stream that keeps the events.",
    )
    subject_prefix: str = Field(
        default="civic.events",
        pattern=r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$",
        description="Subject prefix: an event is published as PREFIX.EVENT_NAME.LANE.",
    )
    max_age_hours: float = Field(
        default=168, gt=0, description="How long the stream keeps events after publication."
    )
    lanes: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Parallel delivery lanes (events of one key share a lane and stay in order); "
        "unset: 1 on SQLite, 4 otherwise.",
    )
    batch: int = Field(
        default=500, ge=1, le=5000, description="Outbox events the relay claims at once."
    )
    retry_attempts: int = Field(
        default=5, ge=1, le=100, description="Tries of a failing handler before dead-lettering."
    )
    retry_first_delay_seconds: float = Field(
        default=0.05, gt=0, description="Wait before the first retry of a failing handler."
    )
    retry_factor: float = Field(
        default=4, ge=1, description="Factor between successive waits before retries."
    )
    poll_seconds: float = Field(
        default=0.5,
        gt=0,
        description="Longest wait of the relay between looks at the outbox (commits wake it).",
    )


class RoutingSettings(BaseModel):
    """Routes and ETAs: a straight line times a detour factor, or an OSRM server."""

    osrm_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Base URL of an OSRM server you run (http://host:5000); unset routes along "
        "a straight line times the detour factor.",
    )
    osrm_timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, description="Longest wait for one answer of the OSRM server."
    )
    osrm_fallback: bool = Field(
        default=True,
        description="When the OSRM server fails, answer with the straight-line estimate (marked "
        "as such) instead of an error.",
    )
    osrm_profiles: dict[str, str] = Field(
        default={
            "fire_engine": "driving",
            "ambulance": "driving",
            "police": "driving",
            "car": "driving",
            "bicycle": "cycling",
            "walking": "walking",
        },
        description="OSRM profile used in the URL for each vehicle profile.",
    )
    detour_factor: float = Field(
        default=1.3,
        ge=1.0,
        le=5.0,
        description="Road distance over straight-line distance, for the straight-line router.",
    )
    speeds_kmh: dict[str, float] = Field(
        default={
            "fire_engine": 30.0,
            "ambulance": 32.0,
            "police": 32.0,
            "car": 25.0,
            "bicycle": 14.0,
            "walking": 4.5,
        },
        description="Average speed in km/h of each vehicle profile, for the straight-line router.",
    )

    @model_validator(mode="after")
    def _positive_speeds(self) -> Self:
        slow = [name for name, speed in self.speeds_kmh.items() if not 0 < speed <= 300]
        if slow:
            raise ValueError(f"speeds_kmh must be above 0 and at most 300 km/h: {slow}")
        return self


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
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    devices: DevicesSettings = Field(default_factory=DevicesSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    workflow: WorkflowSettings = Field(default_factory=WorkflowSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
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
    def _refuse_dev_inbox_in_production(self) -> Self:
        self.notify.check_for(self.env)
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
