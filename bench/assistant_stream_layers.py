"""Where a streamed token's time goes: tokens/s of each layer under the socket, alone, as ratios of
reading the same server-sent events with a bare HTTP client in the same run.

    .venv/bin/python -m adiuva.embedded run -- .venv/bin/python bench/assistant_stream_layers.py [--tokens 2000]

The scripted model runs in a process of its own (bench/assistant_streaming.py's ``--serve-model``)
and writes ``--tokens`` five-character tokens as fast as it can. Layers, each adding to the one before:
1. httpx: the SSE lines of the completion, nothing parsed;
2. the OpenAI SDK: ``AsyncOpenAI.chat.completions.create(stream=True)`` (a pydantic chunk object per token);
3. langchain-openai: ``ChatOpenAI.astream`` (a message chunk per token, callbacks);
4. LangGraph: ``agent_events`` on the Home supervisor (``stream_mode`` messages + updates);
5. the stream sanitizer on every token.
``chat_model`` streams through ``apps.assistant.llm.DecodedChunkCompletions`` (the decoded SSE
dicts, no per-chunk pydantic objects); the "SDK chunk objects" line beside layer 3 is a
``ChatOpenAI`` on the SDK's own ``chat.completions``, as langchain-openai builds it, for comparison.
What the socket adds on top (numbered, logged frames; the send) is the difference to
bench/assistant_streaming.py's stack figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.test")
os.environ.setdefault("ADIUVA_TEST_RUN", "asstbench")

from assistant_streaming import ModelProcess  # noqa: E402


async def measure(base_url: str, n: int, runs: int) -> list[tuple[str, float]]:
    import httpx2
    import openai

    from apps.assistant.conversation import agent_events
    from apps.assistant.kinds import ChatKind
    from apps.assistant.llm import ModelRole, chat_model
    from apps.assistant.sanitizer import StreamSanitizer

    def message(tag: str) -> str:
        return f"bench tag={tag} n={n} pace=0"

    async def sse(tag: str) -> None:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": message(tag)}]}
        async with (
            httpx2.AsyncClient() as client,
            client.stream("POST", f"{base_url}/chat/completions", json=body) as r,
        ):
            async for _line in r.aiter_lines():
                pass

    sdk = openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url)

    async def sdk_stream(tag: str) -> None:
        stream = await sdk.chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": message(tag)}]
        )
        async for _chunk in stream:
            pass

    model = chat_model(ModelRole.SUPERVISOR)

    async def langchain_stream(tag: str) -> None:
        async for _chunk in model.astream(message(tag)):
            pass

    sdk_chunk_model = model.model_copy(update={"async_client": model.root_async_client.chat.completions})

    async def sdk_chunk_stream(tag: str) -> None:
        async for _chunk in sdk_chunk_model.astream(message(tag)):
            pass

    async def langgraph_stream(tag: str, *, sanitize: bool = False) -> None:
        sanitizer = StreamSanitizer()
        events = agent_events(kind=ChatKind.HOME, message=message(tag), history=None, system_prompt="You help.")
        async for _kind, value in events:
            if sanitize:
                sanitizer.feed(value)

    async def sanitized(tag: str) -> None:
        await langgraph_stream(tag, sanitize=True)

    layers = [
        ("httpx SSE lines", sse),
        ("+ OpenAI SDK chunks", sdk_stream),
        ("+ ChatOpenAI.astream", langchain_stream),
        ("  (on SDK chunk objects)", sdk_chunk_stream),
        ("+ LangGraph agent_events", langgraph_stream),
        ("+ stream sanitizer", sanitized),
    ]
    await langgraph_stream("warm")  # graph compile, connections
    results: list[tuple[str, float]] = []
    for name, layer in layers:
        rates = []
        for run in range(runs):
            start = time.perf_counter()
            await layer(f"layer{len(results)}run{run}")
            rates.append(n / (time.perf_counter() - start))
        results.append((name, sorted(rates)[len(rates) // 2]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings

    model = ModelProcess()
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-bench", model.base_url
    try:
        results = asyncio.run(measure(model.base_url, args.tokens, args.runs))
    finally:
        model.proc.terminate()
    baseline = results[0][1]
    print(f"stream layers, {args.tokens} tokens written as fast as the model can, median of {args.runs} runs")
    for name, rate in results:
        print(f"  {name:26} {rate:8.0f} tokens/s  ratio to httpx SSE {rate / baseline:.3f}")


if __name__ == "__main__":
    main()
