"""The channel layer instance of the running event loop, for the socket and for every caller that
sends to a socket's channel (services, streams, higher apps)."""

from __future__ import annotations

import asyncio
import weakref

from channels.layers import BaseChannelLayer, channel_layers

_layers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BaseChannelLayer] = weakref.WeakKeyDictionary()


def loop_layer() -> BaseChannelLayer:
    """The channel layer instance of the running event loop (consumers and callers alike).

    channels-redis refuses two event loops receiving on one layer instance, and one process may
    run several loops (a server thread beside a caller, async_to_sync in a worker); so each loop
    gets its own instance.
    """
    loop = asyncio.get_running_loop()
    layer = _layers.get(loop)
    if layer is None:
        layer = _layers[loop] = channel_layers.make_backend("default")
    return layer
