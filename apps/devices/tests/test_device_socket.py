"""The device consumer is the ``DeviceSocket`` the socket's modules annotate with: every member,
with the protocol's call signature or value type (mypy cannot check it: the consumer's Channels
base class is untyped)."""

from __future__ import annotations

import asyncio
import inspect
import types
import typing

from channels.layers import BaseChannelLayer
from typing_extensions import get_protocol_members

from apps.accounts.models import User
from apps.devices.consumers import DeviceConsumer
from apps.devices.device_socket import DeviceSocket
from apps.devices.pending_calls import PendingCalls
from apps.devices.presence import PresenceEntry, SessionState
from apps.devices.tests.conftest import SOCKET_DB, held_socket

pytestmark = SOCKET_DB

# The names device_socket.py imports only for type checking, to resolve its annotations here.
_ANNOTATION_NAMES = {
    "BaseChannelLayer": BaseChannelLayer,
    "User": User,
    "PendingCalls": PendingCalls,
    "PresenceEntry": PresenceEntry,
    "SessionState": SessionState,
    "asyncio": asyncio,
}


def _is_instance(value: object, hint: object) -> bool:
    if hint is typing.Any:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_instance(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    return isinstance(value, typing.get_origin(hint) or hint)  # type: ignore[arg-type]


def _class_annotations(cls: type) -> dict[str, str]:
    """The annotations ``cls`` and its bases declare (as written: the modules postpone them), the
    nearest first."""
    declared: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        declared.update(vars(klass).get("__annotations__", {}))
    return declared


async def test_the_device_consumer_has_every_member_of_device_socket(devices, user):
    # given a device socket that said hello
    client = await devices(user)

    # when the server's consumer of it is looked up
    consumer = held_socket(user, client.device_id)

    # then it is a DeviceConsumer with each member of DeviceSocket: methods and properties with the
    # protocol's signature, attributes declared with the protocol's type (or, when set only in a
    # method, holding a value of it; the server's loop makes its own timer handles, so the handle is
    # held to its declaration)
    assert isinstance(consumer, DeviceConsumer)
    hints = typing.get_type_hints(DeviceSocket, localns=_ANNOTATION_NAMES)
    members = get_protocol_members(DeviceSocket)
    assert {"send_text", "close_with", "spawn", "user_id", "pending", "accepting_calls"} <= members
    mismatched = []
    for name in sorted(members):
        declared = inspect.getattr_static(DeviceSocket, name, None)
        if isinstance(declared, property):
            implemented = inspect.getattr_static(DeviceConsumer, name, None)
            if not isinstance(implemented, property) or str(inspect.signature(implemented.fget)) != str(
                inspect.signature(declared.fget)
            ):
                mismatched.append(name)
        elif inspect.isfunction(declared):
            implemented = getattr(DeviceConsumer, name, None)
            if implemented is None or str(inspect.signature(implemented)) != str(inspect.signature(declared)):
                mismatched.append(name)
        elif name in _class_annotations(DeviceConsumer):
            if _class_annotations(DeviceConsumer)[name] != DeviceSocket.__annotations__[name]:
                mismatched.append(name)
        elif not hasattr(consumer, name) or not _is_instance(getattr(consumer, name), hints[name]):
            mismatched.append(name)
    assert mismatched == []
