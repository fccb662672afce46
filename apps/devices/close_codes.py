"""Close codes of the device socket (4000-4999 is the application range of RFC 6455).

A refused handshake (browser Origin not allowed) is an HTTP 403 and carries no close code.
"""

from enum import IntEnum


class DeviceCloseCode(IntEnum):
    BAD_HELLO = 4400  # the first frame was not a valid device_hello
    UNAUTHENTICATED = 4401  # no token, or a token that is not a valid access token
    TOKEN_EXPIRED = 4402  # the access token expired (at the handshake or while the socket lived)
    SESSION_REVOKED = 4403  # the token's session was logged out or revoked
    USER_DEACTIVATED = 4404  # the account was deactivated
    DEVICE_FORGOTTEN = 4406  # the user removed this device from their account
    HELLO_TIMEOUT = 4408  # no device_hello within DEVICE_HELLO_TIMEOUT
    REPLACED = 4409  # a newer socket for the same device took over
    HEARTBEAT_TIMEOUT = 4410  # no pong within DEVICE_PONG_TIMEOUT after a ping
    DEVICE_LIMIT = 4413  # the user has DEVICE_MAX_PER_USER devices and all of them are online
    RATE_LIMITED = 4429  # the client kept flooding after being told to slow down
    SERVER_ERROR = 1011  # the server failed on this socket (logged); reconnect
    # this process is stopping (a deploy); reconnect after the reason's reconnect_after_ms, then resume
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013  # a service the socket needs (Redis) is unavailable; reconnect after a delay
