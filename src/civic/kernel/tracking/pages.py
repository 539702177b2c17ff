"""The live map page: dispatchers watch units (and, when chosen, people) move."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from civic.kernel.identity import Principal
from civic.kernel.tracking.models import PERSONAL_KINDS, TrackedKind
from civic.kernel.tracking.part import SERVICE, WATCH_ROLES, topic_of
from civic.kernel.web.deps import require
from civic.kernel.web.i18n import gettext as _
from civic.kernel.web.templating import render

router = APIRouter(prefix="/tracking", include_in_schema=False)
Watcher = Annotated[Principal, Depends(require(SERVICE, *WATCH_ROLES))]
# People's positions are shown only when asked for: the page opens on units alone.
DEFAULT_KINDS = [kind for kind in TrackedKind if kind not in PERSONAL_KINDS]


def kind_labels() -> dict[TrackedKind, str]:
    """Return what each kind is called, in the request's language."""
    return {
        TrackedKind.FIRE_UNIT: _("소방 차량"),
        TrackedKind.AMBULANCE: _("구급차"),
        TrackedKind.VEHICLE: _("차량"),
        TrackedKind.DRONE: _("드론"),
        TrackedKind.COLLABORATOR: _("협력자"),
        TrackedKind.WATCH: _("스마트워치"),
        TrackedKind.ANKLE_DEVICE: _("전자발찌"),
    }


@router.get("/live")
async def live_map(
    request: Request,
    principal: Watcher,
    kinds: Annotated[list[TrackedKind] | None, Query(alias="kind")] = None,
) -> Response:
    """Show the organisation's tracked subjects on a map that follows them live."""
    chosen = kinds or DEFAULT_KINDS
    labels = kind_labels()
    return render(
        request,
        "tracking/live.html",
        {
            "kinds": [
                {
                    "value": kind.value,
                    "label": labels[kind],
                    "personal": kind in PERSONAL_KINDS,
                    "chosen": kind in chosen,
                }
                for kind in TrackedKind
            ],
            "chosen": [kind.value for kind in chosen],
            "kind_labels": {kind.value: label for kind, label in labels.items()},
            "topics": [topic_of(kind.value) for kind in chosen],
        },
    )
