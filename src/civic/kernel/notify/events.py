"""Events of notifications: a message reached someone, or no channel could deliver it."""

from __future__ import annotations

from pydantic import Field

from civic.kernel.bus import Event


class NotificationSent(Event):
    """A message was handed to a channel's gateway (or kept in the dev inbox)."""

    name = "notify.sent"
    message_id: str = Field(description="The notification message.")
    delivery_id: str = Field(description="The delivery that went through.")
    template: str = Field(description="Kind of message.")
    channel: str = Field(description="Channel that carried it.")
    transport: str = Field(description="Gateway that took it (dev_inbox, http_sms, ...).")

    def key(self) -> str:
        """Order the events of one message."""
        return self.message_id


class NotificationFailed(Event):
    """Every channel tried for a message gave up; nobody was reached."""

    name = "notify.failed"
    message_id: str = Field(description="The notification message.")
    delivery_id: str = Field(description="The last delivery tried.")
    template: str = Field(description="Kind of message.")
    channel: str = Field(description="Last channel tried.")
    error: str = Field(description="Why the last channel gave up.")

    def key(self) -> str:
        """Order the events of one message."""
        return self.message_id
