"""Send one notification now, outside the server: `civic notify send` checks the gateways."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from civic.kernel.db import create_engine, create_sessionmaker, transaction
from civic.kernel.notify.models import NotificationDelivery, Urgency
from civic.kernel.notify.notifier import Notifier
from civic.kernel.notify.preferences import Recipient
from civic.kernel.runtime import Kernel
from civic.kernel.settings import KernelSettings


async def send_once(
    settings: KernelSettings,
    *,
    recipient: Recipient,
    template: str,
    context: dict[str, Any],
    urgency: Urgency = Urgency.NORMAL,
    channels: Sequence[str] | None = None,
) -> list[NotificationDelivery]:
    """Queue one message, send it through the configured channels, return its deliveries.

    Retries wait in the outbox for the server's worker; what this returns says which.
    """
    engine = create_engine(settings.database.url)
    kernel = Kernel(settings=settings, engine=engine, sessions=create_sessionmaker(engine))
    notifier = Notifier(
        settings.notify.model_copy(update={"worker": False}),
        env=settings.env,
        base_url=settings.web.base_url,
    )
    await notifier.start(kernel)
    try:
        async with transaction(kernel.sessions) as session:
            message = await notifier.notify(
                session,
                recipient=recipient,
                template=template,
                context=context,
                urgency=urgency,
                channels=channels,
            )
        # Falling back may queue the next channel: go on while this message has due work.
        for _ in range(len(notifier.routes) + 1):
            if await notifier.deliver_due(message_id=message.id) == 0:
                break
        async with kernel.sessions() as session:
            rows = await session.scalars(
                select(NotificationDelivery)
                .where(NotificationDelivery.message_id == message.id)
                .order_by(NotificationDelivery.position, NotificationDelivery.created_at)
            )
            return list(rows)
    finally:
        await notifier.stop()
        await engine.dispose()
