"""connector_fetch on Microsoft Graph: Outlook message delta and Teams chat messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.accounts.models import Tier
from apps.connectors.error_codes import ConnectorErrorCode
from apps.connectors.errors import ConnectorError
from apps.connectors.fetch import FetchResult, connector_fetch

from .fake_providers import graph_time

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)


def _mail(n: int, *, sender: str = "carla@client.example", received: datetime, html: bool = False) -> dict:
    content = f"<div><p>Body {n}</p></div>" if html else f"Body {n}"
    return {
        "id": f"AAMk{n}",
        "subject": f"Subject {n}",
        "from": {"emailAddress": {"name": "Carla" if "carla" in sender else "Other", "address": sender}},
        "receivedDateTime": graph_time(received),
        "body": {"contentType": "html" if html else "text", "content": content},
        "webLink": f"https://outlook.office365.com/owa/?ItemID=AAMk{n}",
        "isDraft": False,
    }


@pytest.fixture
def ms_user(make_user, connect):
    user = make_user("alice@example.com", tier=Tier.PRO)
    connect(user, "outlook")
    connect(user, "teams")
    return user


def _fetch(user, provider: str, **kwargs) -> FetchResult:
    args = {"filter_config": {}, "cursor": None} | kwargs
    return connector_fetch(user_id=user.id, provider=provider, **args)


def test_outlook_delta_follows_next_links_and_returns_a_delta_link_cursor(ms_user, fake):
    # given five inbox messages of the last days, one html, one from another sender, one too old
    inbox = fake.state.outlook_folders["inbox"]
    inbox += [_mail(n, received=NOW - timedelta(days=5 - n)) for n in range(1, 5)]
    inbox.append(_mail(5, sender="news@shop.example", received=NOW))
    inbox.append(_mail(6, received=NOW - timedelta(days=30)))
    inbox[1] |= {"body": {"contentType": "html", "content": "<div><p>Body 2</p><p>Second line</p></div>"}}

    # when the agent fetches carla's mail
    result = _fetch(ms_user, "outlook", filter_config={"senders": ["carla@client.example"]})

    # then pages were followed, the first request selected fields and the lookback, and the cursor is the deltaLink
    calls = fake.requests_to("/graph/v1.0/me/mailFolders/inbox/messages/delta")
    assert len(calls) == 2  # pages of three
    assert calls[0]["query"]["$select"].startswith("id,subject,from,receivedDateTime,body")
    assert calls[0]["query"]["$filter"].startswith("receivedDateTime ge ")
    assert 'outlook.body-content-type="text"' in calls[0]["headers"]["Prefer"]
    assert [m.id for m in result.messages] == ["AAMk1", "AAMk2", "AAMk3", "AAMk4"]
    first = result.messages[0]
    assert first.provider == "outlook"
    assert first.subject == "Subject 1"
    assert first.sender == "Carla <carla@client.example>"
    assert first.body_text == "Body 1"
    assert first.labels == ("inbox",)
    assert first.web_link.endswith("ItemID=AAMk1")
    assert first.received_at == NOW - timedelta(days=4)
    assert result.messages[1].body_text == "Body 2\n\nSecond line"
    assert "$deltatoken=" in result.cursor["delta_links"]["inbox"]

    # when a new message arrives and the agent runs again with the cursor
    inbox.append(_mail(7, received=NOW))
    again = _fetch(ms_user, "outlook", filter_config={"senders": ["carla@client.example"]}, cursor=result.cursor)

    # then only the new one comes back
    assert [m.id for m in again.messages] == ["AAMk7"]
    assert again.cursor["delta_links"]["inbox"] != result.cursor["delta_links"]["inbox"]


def test_a_bounded_outlook_fetch_resumes_at_the_next_link(ms_user, fake):
    fake.state.outlook_folders["inbox"] += [_mail(n, received=NOW - timedelta(hours=10 - n)) for n in range(1, 6)]

    first = _fetch(ms_user, "outlook", max_messages=2)
    second = _fetch(ms_user, "outlook", cursor=first.cursor, max_messages=10)

    assert [m.id for m in first.messages] == ["AAMk1", "AAMk2"]
    assert "$skiptoken=" in first.cursor["delta_links"]["inbox"]
    assert [m.id for m in second.messages] == ["AAMk3", "AAMk4", "AAMk5"]
    assert "$deltatoken=" in second.cursor["delta_links"]["inbox"]


def test_a_forgotten_delta_link_starts_a_fresh_sync(ms_user, fake):
    fake.state.outlook_folders["inbox"].append(_mail(1, received=NOW))
    stale = {"delta_links": {"inbox": f"{fake.graph_base}/me/mailFolders/inbox/messages/delta?$deltatoken=gone"}}

    result = _fetch(ms_user, "outlook", cursor=stale)

    assert [m.id for m in result.messages] == ["AAMk1"]


def test_a_cursor_link_to_another_host_is_never_followed(ms_user, fake):
    fake.state.outlook_folders["inbox"].append(_mail(1, received=NOW))
    hostile = {"delta_links": {"inbox": "https://attacker.example/steal?$deltatoken=x"}}

    result = _fetch(ms_user, "outlook", cursor=hostile)

    assert [m.id for m in result.messages] == ["AAMk1"]
    assert all("attacker" not in r["path"] for r in fake.requests)


def test_outlook_folders_come_from_labels(ms_user, fake):
    fake.state.outlook_folders["archive"] = [_mail(9, received=NOW)]

    result = _fetch(ms_user, "outlook", filter_config={"labels": ["archive"]})

    assert [(m.id, m.labels) for m in result.messages] == [("AAMk9", ("archive",))]
    assert set(result.cursor["delta_links"]) == {"archive"}


def _chat_message(n: int, *, created: datetime, modified: datetime | None = None, **extra) -> dict:
    return {
        "id": f"{n}",
        "messageType": "message",
        "createdDateTime": graph_time(created),
        "lastModifiedDateTime": graph_time(modified or created),
        "deletedDateTime": None,
        "from": {"user": {"id": "u1", "displayName": "Carla Client"}},
        "body": {"contentType": "html", "content": f"<p>Message {n}</p>"},
        "webUrl": f"https://teams.microsoft.com/l/message/{n}",
    } | extra


def test_teams_reads_new_chat_messages_per_chat_with_a_cursor(ms_user, fake):
    # given two chats with messages, a system event and a deleted message
    fake.state.chats = [
        {"id": "19:abc@thread.v2", "topic": "Project Apollo", "chatType": "group"},
        {"id": "19:def@unq.gbl.spaces", "topic": None, "chatType": "oneOnOne"},
    ]
    fake.state.chat_messages = {
        "19:abc@thread.v2": [
            _chat_message(1, created=NOW - timedelta(hours=3)),
            _chat_message(2, created=NOW - timedelta(hours=2), messageType="systemEventMessage"),
            _chat_message(3, created=NOW - timedelta(hours=1), deletedDateTime=graph_time(NOW)),
        ],
        "19:def@unq.gbl.spaces": [_chat_message(4, created=NOW - timedelta(minutes=30))],
    }

    # when the agent fetches
    result = _fetch(ms_user, "teams")

    # then only real messages come back, oldest first, with the chat as label and no subject
    assert [m.id for m in result.messages] == ["1", "4"]
    first = result.messages[0]
    assert first.provider == "teams"
    assert first.subject == ""
    assert first.sender == "Carla Client"
    assert first.body_text == "Message 1"
    assert first.labels == ("Project Apollo",)
    assert result.messages[1].labels == ("oneOnOne 19:def@unq.gbl.spaces",)
    calls = fake.requests_to("/graph/v1.0/chats/")
    assert calls[0]["query"]["$filter"].startswith("lastModifiedDateTime gt ")
    assert set(result.cursor["chats"]) == {"19:abc@thread.v2", "19:def@unq.gbl.spaces"}

    # when a new message arrives and an old one is edited, and the agent runs again
    fake.state.chat_messages["19:abc@thread.v2"].append(_chat_message(5, created=NOW))
    fake.state.chat_messages["19:abc@thread.v2"][0]["lastModifiedDateTime"] = graph_time(NOW)
    again = _fetch(ms_user, "teams", cursor=result.cursor)

    # then only the new message is returned (the edit of an already returned one is not)
    assert [m.id for m in again.messages] == ["5"]


def test_a_bounded_teams_fetch_returns_the_oldest_and_resumes_after_them(ms_user, fake):
    fake.state.chats = [{"id": "c1", "topic": "Team", "chatType": "group"}]
    fake.state.chat_messages = {"c1": [_chat_message(n, created=NOW - timedelta(minutes=10 - n)) for n in range(1, 6)]}

    first = _fetch(ms_user, "teams", max_messages=2)
    second = _fetch(ms_user, "teams", cursor=first.cursor, max_messages=10)

    assert [m.id for m in first.messages] == ["1", "2"]
    assert [m.id for m in second.messages] == ["3", "4", "5"]


def test_teams_labels_and_senders_filter_chats_and_messages(ms_user, fake):
    fake.state.chats = [
        {"id": "c1", "topic": "Project Apollo", "chatType": "group"},
        {"id": "c2", "topic": "Lunch", "chatType": "group"},
    ]
    other = {"from": {"user": {"id": "u2", "displayName": "Bob"}}}
    fake.state.chat_messages = {
        "c1": [_chat_message(1, created=NOW - timedelta(minutes=5)), _chat_message(2, created=NOW, **other)],
        "c2": [_chat_message(3, created=NOW)],
    }

    result = _fetch(ms_user, "teams", filter_config={"labels": ["project apollo"], "senders": ["carla"]})

    assert [m.id for m in result.messages] == ["1"]
    assert fake.count("GET", "/graph/v1.0/chats/c2") == 0


def test_teams_reads_channel_messages_with_channel_and_date_filters(ms_user, fake):
    # given two teams' channels, with messages inside and outside the date range
    fake.state.teams = [{"id": "t1", "displayName": "Studio"}, {"id": "t2", "displayName": "Family"}]
    fake.state.channels = {
        "t1": [{"id": "19:gen@thread.tacv2", "displayName": "General"}, {"id": "19:rnd", "displayName": "Random"}],
        "t2": [{"id": "19:fam", "displayName": "General"}],
    }
    yesterday, long_ago = NOW - timedelta(days=1), NOW - timedelta(days=20)
    fake.state.channel_messages = {
        "t1/19:gen@thread.tacv2": [
            _chat_message(10, created=long_ago),
            *(_chat_message(n, created=yesterday + timedelta(minutes=n)) for n in (11, 12, 13)),
        ],
        "t1/19:rnd": [_chat_message(20, created=yesterday)],
        "t2/19:fam": [_chat_message(30, created=yesterday)],
    }
    date_range = {"from": (NOW - timedelta(days=3)).date().isoformat(), "to": NOW.date().isoformat()}

    # when the agent asks for one channel, named as "Team/Channel", over the last three days
    result = _fetch(ms_user, "teams", filter_config={"labels": ["Studio/General"], "date_range": date_range})

    # then that channel's messages in range come back, oldest first, labelled with their channel
    assert [m.id for m in result.messages] == ["11", "12", "13"]
    assert {m.labels for m in result.messages} == {("Studio/General",)}
    assert set(result.cursor["channels"]) == {"t1/19:gen@thread.tacv2"}
    assert fake.count("GET", "/graph/v1.0/teams/t1/channels/19:rnd/messages/delta") == 0

    # when a message arrives and the agent runs again with its cursor
    fake.state.channel_messages["t1/19:gen@thread.tacv2"].append(_chat_message(14, created=NOW))
    again = _fetch(
        ms_user, "teams", filter_config={"labels": ["Studio/General"], "date_range": date_range}, cursor=result.cursor
    )

    # then only the new one
    assert [m.id for m in again.messages] == ["14"]


def test_teams_reads_chats_and_every_channel_without_labels(ms_user, fake):
    fake.state.chats = [{"id": "c1", "topic": "Apollo", "chatType": "group"}]
    fake.state.chat_messages = {"c1": [_chat_message(1, created=NOW - timedelta(minutes=3))]}
    fake.state.teams = [{"id": "t1", "displayName": "Studio"}]
    fake.state.channels = {"t1": [{"id": "ch", "displayName": "General"}]}
    fake.state.channel_messages = {"t1/ch": [_chat_message(2, created=NOW - timedelta(minutes=1))]}

    result = _fetch(ms_user, "teams")

    assert [(m.id, m.labels) for m in result.messages] == [("1", ("Apollo",)), ("2", ("Studio/General",))]


def test_graph_401_refreshes_once_and_retries(ms_user, fake):
    fake.state.outlook_folders["inbox"].append(_mail(1, received=NOW))
    fake.expire_access_tokens()
    refreshes = fake.count("POST", "/ms/common/oauth2/v2.0/token")

    result = _fetch(ms_user, "outlook")

    assert [m.id for m in result.messages] == ["AAMk1"]
    assert fake.count("POST", "/ms/common/oauth2/v2.0/token") == refreshes + 1
    assert fake.requests_to("/ms/common/oauth2/v2.0/token")[-1]["form"]["scope"].endswith("offline_access")


def test_graph_429_then_5xx_then_success(ms_user, fake):
    fake.state.chats = [{"id": "c1", "topic": "Team", "chatType": "group"}]
    fake.state.chat_messages = {"c1": [_chat_message(1, created=NOW)]}
    fake.fail("/graph/v1.0/me/chats", [(429, {"Retry-After": "1"}, {}), (502, {}, {})])

    result = _fetch(ms_user, "teams")

    assert [m.id for m in result.messages] == ["1"]
    assert fake.count("GET", "/graph/v1.0/me/chats") == 3


def test_graph_5xx_forever_is_provider_unavailable(ms_user, fake):
    fake.fail("/graph/v1.0/me/mailFolders", [(503, {}, {})] * 10)

    with pytest.raises(ConnectorError) as raised:
        _fetch(ms_user, "outlook")

    assert raised.value.code == ConnectorErrorCode.PROVIDER_UNAVAILABLE


def test_graph_4xx_is_provider_request_failed_with_the_graph_code(ms_user, fake):
    fake.fail("/graph/v1.0/me/mailFolders", [(403, {}, {"error": {"code": "ErrorAccessDenied"}})])

    with pytest.raises(ConnectorError) as raised:
        _fetch(ms_user, "outlook")

    assert raised.value.code == ConnectorErrorCode.PROVIDER_REQUEST_FAILED
    assert "ErrorAccessDenied" in raised.value.message
