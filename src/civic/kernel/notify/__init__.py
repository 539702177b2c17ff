"""Notifications: SMS, Web Push, messenger and e-mail behind one Notifier, with an outbox.

Queue a message inside your transaction and let the worker send it after commit::

    await notifier_of(kernel).notify(
        session,
        recipient=Recipient(phone="010-1234-5678"),
        template="citizen_link",
        context={"sender": "119", "subject": "출동 상황", "link": url},
        urgency=Urgency.EMERGENCY,
    )
"""

from civic.kernel.notify.channels import Channel, GiveUp, Outgoing, Sent, TryAgain
from civic.kernel.notify.events import NotificationFailed, NotificationSent
from civic.kernel.notify.models import (
    DeliveryAttempt,
    DeliveryStatus,
    DevInboxMessage,
    NotificationDelivery,
    NotificationMessage,
    NotifyPreference,
    PushSubscription,
    Urgency,
)
from civic.kernel.notify.notifier import Notifier, notifier_of
from civic.kernel.notify.outbox import NotifyError
from civic.kernel.notify.preferences import (
    Preferences,
    Recipient,
    preferences_for,
    quiet_until,
    set_preferences,
)
from civic.kernel.notify.templates import NotifyTemplateError, Rendered, TemplateCatalog

__all__ = [
    "Channel",
    "DeliveryAttempt",
    "DeliveryStatus",
    "DevInboxMessage",
    "GiveUp",
    "NotificationDelivery",
    "NotificationFailed",
    "NotificationMessage",
    "NotificationSent",
    "Notifier",
    "NotifyError",
    "NotifyPreference",
    "NotifyTemplateError",
    "Outgoing",
    "Preferences",
    "PushSubscription",
    "Recipient",
    "Rendered",
    "Sent",
    "TemplateCatalog",
    "TryAgain",
    "Urgency",
    "notifier_of",
    "preferences_for",
    "quiet_until",
    "set_preferences",
]
