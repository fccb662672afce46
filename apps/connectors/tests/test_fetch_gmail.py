"""connector_fetch on Gmail: filters, pagination, bodies, since-last-run, and the retry policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.accounts.models import Tier
from apps.connectors.error_codes import ConnectorErrorCode
from apps.connectors.errors import ConnectorError
from apps.connectors.fetch import ConnectorMessage, FetchResult, connector_fetch
from apps.connectors.models import GrantStatus, OAuthGrant

from .fake_providers import gmail_message

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)


def _mailbox(fake) -> None:
    """Five messages over the last days: plain, html-only, multipart with attachment, spam, other sender."""
    fake.add_gmail(
        gmail_message(
            message_id="m1",
            sender="Carla Client <carla@client.example>",
            subject="Invoice for March",
            plain="Please send the invoice by Friday.\n\nThanks,\nCarla",
            html="<p>Please send the <b>invoice</b> by Friday.</p>",
            labels=("INBOX", "Label_7"),
            received=NOW - timedelta(days=3),
        )
    )
    fake.add_gmail(
        gmail_message(
            message_id="m2",
            sender="carla@client.example",
            subject="Kickoff",
            html=(
                "<html><head><style>p{}</style></head>"
                "<body><p>Kickoff&nbsp;on Monday</p><p>Agenda attached</p></body></html>"
            ),
            labels=("INBOX", "Label_7"),
            received=NOW - timedelta(days=2),
        )
    )
    fake.add_gmail(
        gmail_message(
            message_id="m3",
            sender="Carla Client <carla@client.example>",
            subject="Notes",
            plain="Meeting notes: ship v2 — café ☕",
            html="<p>ignored</p>",
            labels=("INBOX", "Label_7"),
            received=NOW - timedelta(days=1),
            attachment=True,
        )
    )
    fake.add_gmail(
        gmail_message(
            message_id="m4",
            sender="news@shop.example",
            subject="Sale",
            plain="50% off",
            labels=("INBOX",),
            received=NOW - timedelta(hours=5),
        )
    )


@pytest.fixture
def gmail_user(make_user, connect, fake):
    user = make_user("alice@example.com")
    connect(user, "gmail")
    _mailbox(fake)
    return user


def _fetch(user, **kwargs) -> FetchResult:
    args = {"provider": "gmail", "filter_config": {}, "cursor": None} | kwargs
    return connector_fetch(user_id=user.id, **args)


def test_gmail_fetch_applies_labels_senders_and_dates_and_decodes_bodies(gmail_user, fake):
    # given a filter on the Clients label, one sender and a date range
    filters = {
        "labels": ["clients"],
        "senders": ["carla@client.example"],
        "date_range": {"from": (NOW - timedelta(days=10)).date().isoformat(), "to": NOW.date().isoformat()},
    }

    # when the agent fetches
    result = _fetch(gmail_user, filter_config=filters)

    # then Gmail was asked with the label id and the search terms, and pages were followed
    lists = fake.requests_to("/gmail/v1/users/me/messages")
    list_calls = [r for r in lists if r["path"] == "/gmail/v1/users/me/messages"]
    assert len(list_calls) == 2  # two pages of two
    assert list_calls[0]["query"]["labelIds"] == "Label_7"
    query = list_calls[0]["query"]["q"]
    assert "{from:carla@client.example}" in query
    assert f"after:{(NOW - timedelta(days=10)).date():%Y/%m/%d}" in query
    assert f"before:{NOW.date() + timedelta(days=1):%Y/%m/%d}" in query
    assert list_calls[1]["query"]["pageToken"] == "2"
    assert all(r["query"].get("format") == "full" for r in lists if r["path"] != "/gmail/v1/users/me/messages")
    # and the messages come back oldest first, bodies decoded, labels named
    assert [m.id for m in result.messages] == ["m1", "m2", "m3"]
    first, second, third = result.messages
    assert first == ConnectorMessage(
        id="m1",
        provider="gmail",
        subject="Invoice for March",
        sender="Carla Client <carla@client.example>",
        body_text="Please send the invoice by Friday.\n\nThanks,\nCarla",
        received_at=NOW - timedelta(days=3),
        labels=("INBOX", "Clients"),
        web_link="https://mail.google.com/mail/u/0/#all/m1",
    )
    assert second.body_text == "Kickoff on Monday\n\nAgenda attached"  # html stripped, style dropped
    assert third.body_text == "Meeting notes: ship v2 — café ☕"  # the attachment is not the body
    assert first.received_at.tzinfo is not None
    assert result.cursor == {"history_id": str(fake.state.gmail_history_id)}


def test_gmail_since_last_run_returns_only_new_matching_messages(gmail_user, fake):
    # given a first run
    filters = {"senders": ["carla@client.example"]}
    first = _fetch(gmail_user, filter_config=filters)
    assert [m.id for m in first.messages] == ["m1", "m2", "m3"]

    # when two messages arrive, one from another sender, and the agent runs again with the cursor
    fake.add_gmail(
        gmail_message(message_id="m5", sender="carla@client.example", subject="New", plain="new", received=NOW)
    )
    fake.add_gmail(gmail_message(message_id="m6", sender="spam@x.example", subject="Other", plain="x", received=NOW))
    second = _fetch(gmail_user, filter_config=filters, cursor=first.cursor)

    # then history was read from the cursor, only the new matching message returned, the cursor moved on
    history = fake.requests_to("/gmail/v1/users/me/history")
    assert history[-1]["query"]["startHistoryId"] == first.cursor["history_id"]
    assert [m.id for m in second.messages] == ["m5"]
    assert second.cursor == {"history_id": str(fake.state.gmail_history_id)}
    assert _fetch(gmail_user, filter_config=filters, cursor=second.cursor).messages == []


def test_gmail_history_too_old_falls_back_to_a_full_list(gmail_user, fake):
    fake.state.gmail_history_floor = 10_000  # Gmail has forgotten every history id we could hold

    result = _fetch(gmail_user, cursor={"history_id": "1001"})

    assert fake.count("GET", "/gmail/v1/users/me/history") == 1
    assert [m.id for m in result.messages] == ["m1", "m2", "m3", "m4"]
    assert result.cursor == {"history_id": str(fake.state.gmail_history_id)}


def test_gmail_fetch_is_bounded_by_max_messages(gmail_user, fake):
    result = _fetch(gmail_user, max_messages=2)

    assert [m.id for m in result.messages] == ["m3", "m4"]  # the newest two, oldest first


def test_bounded_history_fetch_resumes_where_it_stopped(gmail_user, fake):
    # given a cursor before all four messages
    start = {"history_id": "1000"}

    # when reading two at a time
    first = _fetch(gmail_user, cursor=start, max_messages=2)
    second = _fetch(gmail_user, cursor=first.cursor, max_messages=2)

    # then nothing is skipped or repeated
    assert [m.id for m in first.messages] == ["m1", "m2"]
    assert [m.id for m in second.messages] == ["m3", "m4"]


def test_an_unknown_gmail_label_is_a_filter_error_naming_the_field(gmail_user):
    with pytest.raises(ConnectorError) as raised:
        _fetch(gmail_user, filter_config={"labels": ["Nope"]})

    assert raised.value.code == ConnectorErrorCode.FILTER_INVALID
    assert "filter_config.labels" in raised.value.fields


def test_a_401_refreshes_the_token_once_and_retries(gmail_user, fake):
    # given the provider has invalidated the access token before its expiry
    fake.expire_access_tokens()
    refreshes = fake.count("POST", "/google/token")

    # when fetching
    result = _fetch(gmail_user)

    # then one refresh happened and the fetch succeeded with the new token
    assert len(result.messages) == 4
    assert fake.count("POST", "/google/token") == refreshes + 1
    assert OAuthGrant.objects.get(user=gmail_user).status == GrantStatus.ACTIVE


def test_a_401_after_a_refresh_marks_the_grant_needs_reconnect(gmail_user, fake):
    unauthorized = (401, {}, {"error": {"code": 401, "message": "Invalid Credentials"}})
    fake.fail("/gmail/v1/users/me/labels", [unauthorized, unauthorized])

    with pytest.raises(ConnectorError) as raised:
        _fetch(gmail_user)

    assert raised.value.code == ConnectorErrorCode.GRANT_NEEDS_RECONNECT
    assert OAuthGrant.objects.get(user=gmail_user).status == GrantStatus.NEEDS_RECONNECT


def test_a_refused_refresh_during_a_fetch_is_grant_needs_reconnect(gmail_user, fake):
    fake.expire_access_tokens()
    fake.refresh_error = "invalid_grant"

    with pytest.raises(ConnectorError) as raised:
        _fetch(gmail_user)

    assert raised.value.code == ConnectorErrorCode.GRANT_NEEDS_RECONNECT
    grant = OAuthGrant.objects.get(user=gmail_user)
    assert grant.status == GrantStatus.NEEDS_RECONNECT
    assert "invalid_grant" in grant.status_reason


def test_a_429_with_a_short_retry_after_is_waited_out(gmail_user, fake):
    fake.fail("/gmail/v1/users/me/profile", [(429, {"Retry-After": "1"}, {"error": {"code": 429}})])

    result = _fetch(gmail_user)

    assert len(result.messages) == 4
    assert fake.count("GET", "/gmail/v1/users/me/profile") == 2


def test_a_429_with_a_long_retry_after_is_provider_rate_limited(gmail_user, fake):
    fake.fail("/gmail/v1/users/me/labels", [(429, {"Retry-After": "3600"}, {"error": {"code": 429}})])

    with pytest.raises(ConnectorError) as raised:
        _fetch(gmail_user)

    assert raised.value.code == ConnectorErrorCode.PROVIDER_RATE_LIMITED
    assert raised.value.extra["retry_after"] == 3600
    assert raised.value.status == 429


def test_gmail_rate_limit_403_is_treated_as_429(gmail_user, fake):
    body = {"error": {"code": 403, "errors": [{"reason": "rateLimitExceeded"}]}}
    fake.fail("/gmail/v1/users/me/labels", [(403, {"Retry-After": "3600"}, body)])

    with pytest.raises(ConnectorError) as raised:
        _fetch(gmail_user)

    assert raised.value.code == ConnectorErrorCode.PROVIDER_RATE_LIMITED


def test_5xx_is_retried_then_succeeds(gmail_user, fake):
    fake.fail("/gmail/v1/users/me/messages", [(503, {}, {"error": {"code": 503}}), (500, {}, {})])

    result = _fetch(gmail_user)

    assert len(result.messages) == 4


def test_5xx_forever_is_provider_unavailable(gmail_user, fake):
    fake.fail("/gmail/v1/users/me/labels", [(500, {}, {"error": {"code": 500}})] * 10)

    with pytest.raises(ConnectorError) as raised:
        _fetch(gmail_user)

    assert raised.value.code == ConnectorErrorCode.PROVIDER_UNAVAILABLE
    assert fake.count("GET", "/gmail/v1/users/me/labels") == 4  # the first try and three retries


def test_fetch_without_a_grant_is_grant_missing(make_user):
    user = make_user("nobody@example.com", tier=Tier.PRO)

    with pytest.raises(ConnectorError) as raised:
        connector_fetch(user_id=user.id, provider="outlook", filter_config={}, cursor=None)

    assert raised.value.code == ConnectorErrorCode.GRANT_MISSING


def test_fetch_of_an_unknown_provider_is_provider_unknown(make_user):
    with pytest.raises(ConnectorError) as raised:
        connector_fetch(user_id=make_user().id, provider="yahoo", filter_config={}, cursor=None)

    assert raised.value.code == ConnectorErrorCode.PROVIDER_UNKNOWN
