"""Live positions of anything that moves: fire units, collaborators, watches, drones.

Devices report over HTTP (`POST /api/tracking/positions`) or MQTT
(`civic/<organisation code>/tracker/<kind>/<id>/position`). The newest position of each subject
moves it in an in-memory moving index (nearest-k and radius queries) and is pushed to live maps
through the realtime hub; every position is stored in batches as history, kept for
`tracking.history_days`. A subject silent longer than its kind allows raises
`tracking.signal_lost` (and `tracking.signal_restored` when it reports again) through the outbox.
Positions of people are personal data: they are read only through `civic.kernel.tracking.access`,
which checks the role and writes the audit log. The kernel part is
`civic.kernel.tracking.part.Tracker` (`tracker_of(kernel)`).
"""

from civic.kernel.tracking.events import SignalLost, SignalRestored
from civic.kernel.tracking.models import (
    PERSONAL_KINDS,
    TrackedKind,
    TrackedPosition,
    TrackedSubject,
    is_personal,
)
from civic.kernel.tracking.schemas import PositionFix, PositionReport

__all__ = [
    "PERSONAL_KINDS",
    "PositionFix",
    "PositionReport",
    "SignalLost",
    "SignalRestored",
    "TrackedKind",
    "TrackedPosition",
    "TrackedSubject",
    "is_personal",
]
