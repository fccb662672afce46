"""The framework-free pieces: filter validation, the date window, Gmail query building, body text,
Retry-After."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest

from apps.connectors.error_codes import ConnectorErrorCode
from apps.connectors.errors import ConnectorError
from apps.connectors.fetch import filter_config_validate
from apps.connectors.gmail import gmail_query, message_body_text
from apps.connectors.message_text import html_to_text, tidy_text
from apps.connectors.messages import date_window
from apps.connectors.transport import retry_after_seconds

from .fake_providers import gmail_message


def test_filter_config_is_normalised():
    result = filter_config_validate(
        provider="gmail",
        filter_config={
            "labels": [" INBOX ", "inbox", "Clients"],
            "senders": ["a@x.example"],
            "date_range": {"from": "2026-01-01", "to": "2026-02-01T10:00:00"},
        },
    )

    assert result == {
        "labels": ["INBOX", "Clients"],
        "senders": ["a@x.example"],
        "date_range": {"from": "2026-01-01", "to": "2026-02-01"},
    }


def test_an_empty_filter_config_is_valid():
    assert filter_config_validate(provider="teams", filter_config={}) == {"labels": [], "senders": []}


@pytest.mark.parametrize(
    ("filter_config", "field"),
    [
        ({"labels": "INBOX"}, "filter_config.labels"),
        ({"labels": [""]}, "filter_config.labels"),
        ({"labels": ["x"] * 21}, "filter_config.labels"),
        ({"senders": [42]}, "filter_config.senders"),
        ({"date_range": {"from": "yesterday"}}, "filter_config.date_range.from"),
        ({"date_range": {"from": "2026-02-02", "to": "2026-02-01"}}, "filter_config.date_range"),
        ({"date_range": {"since": "2026-02-02"}}, "filter_config.date_range.since"),
        ({"folders": ["inbox"]}, "filter_config.folders"),
        ("labels", "filter_config"),
    ],
)
def test_a_bad_filter_config_names_the_field(filter_config, field):
    with pytest.raises(ConnectorError) as raised:
        filter_config_validate(provider="outlook", filter_config=filter_config)

    assert raised.value.code == ConnectorErrorCode.FILTER_INVALID
    assert raised.value.status == 400
    assert field in raised.value.fields


def test_filter_config_of_an_unknown_provider_is_provider_unknown():
    with pytest.raises(ConnectorError) as raised:
        filter_config_validate(provider="yahoo", filter_config={})

    assert raised.value.code == ConnectorErrorCode.PROVIDER_UNKNOWN


def test_gmail_query_ors_senders_and_makes_before_inclusive():
    query = gmail_query(
        senders=["a@x.example", 'Bob "the" (Builder)'], date_from=date(2026, 1, 1), date_to=date(2026, 1, 31)
    )

    assert query == '{from:a@x.example from:"Bob the Builder"} after:2026/01/01 before:2026/02/01'


def test_gmail_body_prefers_plain_text_and_decodes_the_charset():
    message = gmail_message(
        message_id="m",
        sender="a@x.example",
        subject="s",
        plain="Grüße aus Köln",
        html="<p>ignored</p>",
        received=datetime.now(UTC),
        charset="iso-8859-1",
    )

    assert message_body_text(message["payload"], max_chars=1000) == "Grüße aus Köln"


def test_html_to_text_drops_scripts_and_keeps_paragraphs():
    markup = "<html><script>alert(1)</script><body><h1>Title</h1><p>One &amp; two</p><ul><li>a</li></ul></body>"

    assert tidy_text(html_to_text(markup), max_chars=1000) == "Title\n\nOne & two\n\na"


def test_tidy_text_bounds_the_length():
    assert tidy_text("x" * 50, max_chars=10) == "x" * 9 + "…"


def test_retry_after_reads_seconds_and_http_dates():
    later = datetime.now(UTC) + timedelta(seconds=120)

    assert retry_after_seconds("7", default=1.0) == 7.0
    assert 100 < retry_after_seconds(format_datetime(later, usegmt=True), default=1.0) <= 120
    assert retry_after_seconds(None, default=1.5) == 1.5
    assert retry_after_seconds("soon", default=2.0) == 2.0


def test_the_date_window_starts_at_the_filters_first_day_or_the_lookback():
    now = datetime(2026, 12, 5, 15, 30, tzinfo=UTC)

    ranged = date_window(filters={"date_range": {"from": "2026-11-01", "to": "2026-11-30"}}, now=now, lookback_days=7)
    open_ended = date_window(filters={"date_range": None}, now=now, lookback_days=7)

    assert ranged.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert (ranged.date_from, ranged.date_to) == (date(2026, 11, 1), date(2026, 11, 30))
    assert open_ended.start == now - timedelta(days=7)
    assert (open_ended.date_from, open_ended.date_to) == (None, None)
