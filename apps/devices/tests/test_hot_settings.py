"""Settings kept for the socket's hot path still follow an override."""

from __future__ import annotations

from django.test import override_settings

from apps.devices.frames import max_frame_bytes
from apps.devices.hot_settings import hot_setting


def test_a_kept_setting_follows_an_override_and_its_end():
    before = hot_setting("DEVICE_MAX_PENDING_CALLS")
    with override_settings(DEVICE_MAX_PENDING_CALLS=before + 7, DEVICE_MAX_FRAME_BYTES=1234):
        assert hot_setting("DEVICE_MAX_PENDING_CALLS") == before + 7
        assert max_frame_bytes() == 1234
    assert hot_setting("DEVICE_MAX_PENDING_CALLS") == before
    assert max_frame_bytes() != 1234
