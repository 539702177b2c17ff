"""Bus settings choose the transport: in-process by default, NATS JetStream with a url."""

import pytest
from pydantic import ValidationError

from civic.app import build_parts
from civic.kernel.bus_delivery import InProcessTransport
from civic.kernel.bus_nats import NatsTransport
from civic.kernel.relay import OutboxRelay
from civic.settings import Settings


def relay_in(settings: Settings) -> OutboxRelay:
    [relay] = [part for part in build_parts(settings) if isinstance(part, OutboxRelay)]
    return relay


def test_the_default_bus_is_in_process_with_one_lane_on_sqlite() -> None:
    relay = relay_in(Settings())
    assert isinstance(relay.transport, InProcessTransport)
    assert relay.lanes == 1 and relay.batch == 500
    assert relay.bus.retry.attempts == 5


def test_a_nats_url_in_the_environment_puts_the_bus_on_jetstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CIVIC_DATABASE__URL", "postgresql+asyncpg://civic@db/civic")
    monkeypatch.setenv("CIVIC_BUS__URL", "nats://nats.internal:4222")
    monkeypatch.setenv("CIVIC_BUS__STREAM", "CIVIC_SEOUL")
    monkeypatch.setenv("CIVIC_BUS__RETRY_ATTEMPTS", "8")
    relay = relay_in(Settings())
    assert isinstance(relay.transport, NatsTransport)
    assert relay.transport.url == "nats://nats.internal:4222"
    assert relay.transport.stream == "CIVIC_SEOUL"
    assert relay.lanes == 4 and relay.bus.retry.attempts == 8


@pytest.mark.parametrize(
    "bad",
    [
        {"url": "http://nats:4222"},
        {"stream": "civic.events"},
        {"subject_prefix": "civic.>"},
        {"lanes": 0},
        {"batch": 0},
    ],
)
def test_bad_bus_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(bus=bad)
