"""What an extraction's chat-completions call costs the worker's CPU: the SDK's ``post`` against
``apps/agents/model_post.CompletionPoster``, measured interleaved in one process.

    .venv/bin/python bench/model_post.py [--rounds 7] [--calls 300] [--old /tmp/old]

The scripted model (apps/assistant/testing/scripted_openai.py) answers in a process of its own, so
the figure is this process's CPU (``time.process_time``) per answered call: building and sending the
request, the metering hook, reading and decoding the answer. The body is a real extraction's
(``Extractor.request`` for a 10 KB file, the proposal tool bound). Variants, in an order rotating
each round, ``--calls`` calls each:

- ``sdk``: ``client.post("/chat/completions", body=..., cast_to=object)``, what an extraction did
  before the poster (and still does for a model without its own HTTP client);
- ``new``: this checkout's ``CompletionPoster.post`` (``Extractor.poster``);
- ``old`` (``--old PATH``): the ``CompletionPoster`` of another checkout's
  ``apps/agents/model_post.py`` (loaded from its file) on the same client, e.g. ec5c4bc's.

Printed: the median µs of CPU per call of each, and the median of each round's ratio (new / sdk,
old / sdk, new / old). Also the body's encoding alone, µs per call: the SDK's ``json.dumps``,
ec5c4bc's bare ``orjson.dumps`` (other bytes for some floats) and this checkout's checked orjson
(the SDK's bytes). httpx2's per-request INFO log line is silenced (the same for every variant).

2026-12-06 (fifth stop), 9 rounds x 300 calls, two runs, load 2.5-4.3: sdk 973 / 1,019 us, new
630 / 706 us (0.65x / 0.70x the SDK), ec5c4bc's poster 598 / 692 us (new / old 1.01x / 1.03x); the
body's encoding 36 us json.dumps, 1.6 us orjson, 4.0 us checked orjson.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_start() -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [sys.executable, "-m", "apps.assistant.testing.scripted_openai", "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the scripted model did not start")


def load_poster(path: str) -> Any:
    """The ``CompletionPoster`` class of another checkout's model_post.py (a module of its own)."""
    spec = importlib.util.spec_from_file_location("old_model_post", Path(path) / "apps/agents/model_post.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CompletionPoster


async def cpu_per_call(post: Callable[[], Awaitable[Any]], calls: int) -> float:
    """µs of this process's CPU per call, the answers awaited one after another."""
    start = time.process_time()
    for _ in range(calls):
        await post()
    return (time.process_time() - start) / calls * 1e6


def encoding_us(body: dict[str, Any], calls: int = 2000) -> dict[str, float]:
    """µs per body: the SDK's ``json.dumps``, bare ``orjson.dumps`` (ec5c4bc's), and this checkout's
    ``BodyEncoder`` (orjson after its plainness check), fed two bodies in turn that share the fixed
    part (as a run's extractions do) so each call checks its messages anew."""
    import orjson

    from apps.agents.model_post import BodyEncoder

    bodies = [body, {**body, "messages": [dict(message) for message in body["messages"]]}]
    checked = BodyEncoder()
    figures = {}
    for label, encode in (
        ("json (SDK)", lambda b: json.dumps(b, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()),
        ("orjson (old)", orjson.dumps),
        ("checked orjson (new)", checked),
    ):
        rounds = []
        for _ in range(5):
            start = time.process_time()
            for i in range(calls):
                encode(bodies[i % 2])
            rounds.append((time.process_time() - start) / calls * 1e6)
        figures[label] = statistics.median(rounds)
    return figures


async def measure(args: argparse.Namespace, base_url: str) -> tuple[dict[str, list[float]], dict[str, Any]]:
    from django.conf import settings

    from apps.agents.extraction import Extractor, Source, extraction_prompt
    from apps.assistant.llm import ModelRole, chat_model

    settings.OPENAI_API_KEY = "sk-bench"
    settings.OPENAI_BASE_URL = base_url
    extractor = Extractor(
        model=chat_model(ModelRole.SUBAGENT), prompt_template="", data_types=["tasks"], max_chars=20000
    )
    source = Source(kind="file", label="a.md", text=("Call Anna on Monday about the invoice. " * 260)[:10_000])
    body = extractor.request(
        extraction_prompt(prompt_template="", data_types=["tasks"], source=source, max_chars=20000)
    )
    assert extractor.poster is not None
    new = extractor.poster
    variants: dict[str, Callable[[], Awaitable[Any]]] = {
        "sdk": lambda: extractor.client.post("/chat/completions", body=body, cast_to=object),
        "new": lambda: new.post(body),
    }
    if args.old:
        old = load_poster(args.old)(client=extractor.client, http=new.http)
        variants["old"] = lambda: old.post(body)
    for post in variants.values():  # warm-up: connections, the SDK's platform probe, caches
        for _ in range(30):
            await post()
    runs: dict[str, list[float]] = {label: [] for label in variants}
    labels = list(variants)
    for round_ in range(args.rounds):
        order = labels[round_ % len(labels) :] + labels[: round_ % len(labels)]
        for label in order:
            runs[label].append(await cpu_per_call(variants[label], args.calls))
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.0f} us" for k, v in runs.items()), flush=True)
    return runs, body


def ratio(runs: dict[str, list[float]], a: str, b: str) -> str:
    if a not in runs or b not in runs:
        return ""
    per_round = [x / y for x, y in zip(runs[a], runs[b], strict=True)]
    return f"{a} / {b}: {statistics.median(per_round):.2f}x (rounds {min(per_round):.2f}-{max(per_round):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--old", help="another checkout whose CompletionPoster is measured beside this one")
    args = parser.parse_args()
    import django

    django.setup()
    # httpx2 logs every request at INFO under the test settings: the same cost for every variant,
    # left out here as a production worker at WARNING would.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    model, base_url = model_start()
    try:
        runs, body = asyncio.run(measure(args, base_url))
    finally:
        model.terminate()
        model.wait()
    print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
    for label, figures in runs.items():
        print(f"{label}: median {statistics.median(figures):.0f} us CPU per call")
    for a, b in (("new", "sdk"), ("old", "sdk"), ("new", "old")):
        if line := ratio(runs, a, b):
            print(line)
    encoding = encoding_us(body)
    print(
        f"body of {len(json.dumps(body))} characters encoded: "
        + ", ".join(f"{k} {v:.1f} us" for k, v in encoding.items())
    )


if __name__ == "__main__":
    main()
