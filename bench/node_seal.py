"""Cost of sealing and opening one node pub/sub message (a tool call and its answer cross Redis as
two such messages, each sealed once and opened once): the Fernet token of ``json`` text the nodes
used before, against ``node.encode``/``node.decode`` (AES-GCM of ``orjson``), interleaved rounds.

    .venv/bin/python bench/node_seal.py [--n 20000] [--rounds 7]

Pure CPU in this process (no Redis): the figure is what the encryption and serialisation add to a
remote call's round trip, per message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from device_common import setup_django


def main(n: int, rounds: int) -> None:
    from apps.core.encryption import redis_seal, redis_unseal
    from apps.devices.node import decode, encode
    from apps.devices.services import MSG_TOOL_CALL, _build_call

    call = _build_call(action="get", table="tasks", data={"id": "x"})
    message = {
        "type": MSG_TOOL_CALL,
        "reply_to": "12345-" + "0" * 32,
        "user_id": "0" * 36,
        "device_id": "laptop",
        "deadline": time.time(),
        "call": call,
    }

    def old() -> None:
        json.loads(redis_unseal(redis_seal(json.dumps(message, separators=(",", ":")))))

    def new() -> None:
        decode(encode(message))

    def timed(fn: Callable[[], None]) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n

    old()
    new()
    olds, news = [], []
    for _ in range(rounds):
        olds.append(timed(old))
        news.append(timed(new))
    o, w = statistics.median(olds), statistics.median(news)
    print(f"seal + open one node message: Fernet/json {o * 1e6:.1f} us, AES-GCM/orjson {w * 1e6:.1f} us")
    print(f"ratio new/old (median of {rounds} interleaved rounds): {w / o:.2f}")
    print(f"per remote tool call (two messages): {2 * o * 1e6:.1f} us -> {2 * w * 1e6:.1f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    setup_django()
    main(args.n, args.rounds)
