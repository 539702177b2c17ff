"""The /ws endpoint: who may connect, from where, and which messages each one gets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from civic.kernel.audit import AuditEntry
from civic.kernel.citizen_links import issue_citizen_link, revoke_citizen_link
from civic.kernel.db import transaction
from civic.kernel.identity import Role
from tests.conftest import login
from tests.factories import PASSWORD
from tests.kernel.realtime.conftest import Served, make_person, open_live


def _topics(served: Served) -> None:
    served.hub.register_topic("units", service="dispatch", roles=(Role.DISPATCHER, Role.CREW))
    served.hub.register_topic("case:", service="dispatch", roles=(Role.DISPATCHER,))
    served.hub.register_topic(
        "caller:", service="dispatch", roles=(Role.DISPATCHER,), personal=True
    )
    served.hub.register_link_topic("case-status", "case:{subject_id}")


async def test_a_browser_signed_in_by_cookie_receives_what_it_subscribed(
    served: Served, client
) -> None:
    _topics(served)
    person = await make_person(served.app, roles={"dispatch": [Role.DISPATCHER]})
    # The cookie a real login sets opens the socket too.
    answer = await login(client, person.user.username, PASSWORD)
    assert answer.status_code == 303
    cookie = client.cookies["civic_session"]
    live = await open_live(
        served, headers={"Cookie": f"civic_session={cookie}"}, origin=served.origin
    )
    subscribed = await live.subscribe("units")
    assert subscribed["type"] == "subscribed" and subscribed["seq"] == 0
    served.hub.publish("units", {"unit": "펌프1", "status": "출동"}, organisation_id=None)
    message = await live.receive()
    assert message["type"] == "message"
    assert (message["topic"], message["seq"], message["data"]) == (
        "units",
        1,
        {"unit": "펌프1", "status": "출동"},
    )
    await live.connection.close()


async def test_a_bearer_token_opens_the_socket(served: Served) -> None:
    _topics(served)
    person = await make_person(served.app, roles={"dispatch": [Role.CREW]})
    live = await open_live(served, headers=person.bearer_header)
    assert (await live.subscribe("units"))["type"] == "subscribed"
    await live.connection.close()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer civ_not-a-token"}, {"Authorization": "Basic abc"}],
    ids=["none", "unknown-token", "not-bearer"],
)
async def test_without_valid_credentials_the_socket_closes_with_4401(
    served: Served, headers: dict[str, str]
) -> None:
    live = await open_live(served, headers=headers)
    assert await live.close_code() == 4401
    assert live.connection.close_reason


async def test_a_page_of_another_site_cannot_open_the_socket(served: Served) -> None:
    person = await make_person(served.app, roles={"dispatch": [Role.DISPATCHER]})
    with pytest.raises(InvalidStatus) as refused:
        await open_live(served, headers=person.cookie_header, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    # The configured public address is ours even when the Host header differs.
    live = await open_live(served, headers=person.cookie_header, origin="http://127.0.0.1:8000")
    await live.connection.close()


async def test_topics_need_the_registered_role(served: Served) -> None:
    _topics(served)
    crew = await make_person(served.app, roles={"dispatch": [Role.CREW]})
    other_service = await make_person(served.app, roles={"parking": [Role.DISPATCHER]})
    live = await open_live(served, headers=crew.bearer_header)
    refused = await live.subscribe("case:42")
    assert (refused["type"], refused["status"], refused["topic"]) == ("error", 403, "case:42")
    unknown = await live.subscribe("nothing-here")
    assert (unknown["type"], unknown["status"]) == ("error", 404)
    bad = await live.subscribe("spaces are not allowed")
    assert (bad["type"], bad["status"]) == ("error", 400)
    served.hub.publish("case:42", {"secret": True}, organisation_id=None)
    served.hub.publish("units", {"after": True}, organisation_id=None)
    assert (await live.subscribe("units"))["type"] == "subscribed"
    served.hub.publish("units", {"seen": True}, organisation_id=None)
    assert (await live.receive())["data"] == {"seen": True}
    await live.connection.close()
    elsewhere = await open_live(served, headers=other_service.bearer_header)
    assert (await elsewhere.subscribe("units"))["status"] == 403
    await elsewhere.connection.close()


async def test_each_organisation_gets_only_its_own_and_public_messages(served: Served) -> None:
    _topics(served)
    first = await make_person(served.app, roles={"dispatch": [Role.DISPATCHER]})
    second = await make_person(served.app, roles={"dispatch": [Role.DISPATCHER]})
    admin = await make_person(served.app, roles={"*": [Role.ADMIN]})
    clients = []
    for person in (first, second, admin):
        live = await open_live(served, headers=person.bearer_header)
        assert (await live.subscribe("units"))["type"] == "subscribed"
        clients.append(live)
    served.hub.publish("units", {"n": 1}, organisation_id=first.organisation.id)
    served.hub.publish("units", {"n": 2}, organisation_id=second.organisation.id)
    served.hub.publish("units", {"n": 3}, organisation_id=None)
    seen = []
    for live in clients:
        got = [(await live.receive())["data"]["n"] for _ in range(1 if live is clients[2] else 2)]
        seen.append(got)
    # An administrator of every service still sees only its own organisation's records.
    assert seen == [[1, 3], [2, 3], [3]]
    for live in clients:
        await live.connection.close()


async def _link(served: Served, organisation_id: str, subject_id: str) -> tuple[str, str]:
    async with transaction(served.app.state.kernel.sessions) as session:
        token = await issue_citizen_link(
            session,
            secret=served.app.state.kernel.secret,
            organisation_id=organisation_id,
            purpose="case-status",
            subject_type="case",
            subject_id=subject_id,
            valid_for=timedelta(hours=1),
        )
    from civic.kernel.citizen_links import link_serializer

    return token, link_serializer(served.app.state.kernel.secret).loads(token)


async def test_a_citizen_link_follows_only_its_own_record(served: Served) -> None:
    _topics(served)
    staff = await make_person(served.app, roles={"dispatch": [Role.DISPATCHER]})
    token, link_id = await _link(served, staff.organisation.id, "c-1")
    live = await open_live(served, query=f"?link={token}", origin=served.origin)
    assert (await live.subscribe("case:c-1"))["type"] == "subscribed"
    for topic in ("case:c-2", "units", "caller:c-1"):
        refused = await live.subscribe(topic)
        assert (refused["type"], refused["status"]) == ("error", 403), topic
    served.hub.publish("case:c-1", {"status": "출동 중"}, organisation_id=staff.organisation.id)
    assert (await live.receive())["data"] == {"status": "출동 중"}
    await live.connection.close()
    async with transaction(served.app.state.kernel.sessions) as session:
        await revoke_citizen_link(session, link_id=link_id)
    revoked = await open_live(served, query=f"?link={token}")
    assert await revoked.close_code() == 4401
    forged = await open_live(served, query="?link=forged.token")
    assert await forged.close_code() == 4401


async def test_subscribing_to_a_personal_topic_is_audited(served: Served) -> None:
    _topics(served)
    person = await make_person(served.app, roles={"dispatch": [Role.DISPATCHER]})
    live = await open_live(served, headers=person.bearer_header)
    assert (await live.subscribe("units"))["type"] == "subscribed"
    assert (await live.subscribe("caller:c-9"))["type"] == "subscribed"
    await live.connection.close()
    async with served.app.state.kernel.sessions() as session:
        entries = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.actor_user_id == person.user.id)
            )
        ).all()
    assert [(e.action, e.subject_type, e.subject_id) for e in entries] == [
        ("read", "realtime_topic", "caller:c-9")
    ]
    assert entries[0].organisation_id == person.organisation.id


async def test_malformed_frames_are_answered_counted_and_survived(served: Served) -> None:
    _topics(served)
    person = await make_person(served.app, roles={"dispatch": [Role.DISPATCHER]})
    live = await open_live(served, headers=person.bearer_header)
    for frame in ("not json", "[1, 2]", '{"type": 5}', '{"type": "dance", "topic": "units"}'):
        await live.connection.send(frame)
        answer = await live.receive()
        assert (answer["type"], answer["status"]) == ("error", 400), frame
    await live.connection.send(b"\x00binary")
    assert (await live.receive())["status"] == 400
    bad_since = await live.subscribe("units", since=-1)
    assert (bad_since["type"], bad_since["status"]) == ("error", 400)
    assert served.hub.stats.malformed == 6
    await live.send(type="ping")
    assert await live.receive() == {"type": "pong"}
    assert (await live.subscribe("units"))["type"] == "subscribed"
    await live.send(type="unsubscribe", topic="units")
    assert await live.receive() == {"type": "unsubscribed", "topic": "units"}
    await live.connection.close()
