"""LLM metering: time to first token of a chat turn and the streaming rate per token with metering
off vs on, as ratios of two stacks of this checkout measured interleaved in the same run.

    .venv/bin/python -m adiuva.embedded run -- .venv/bin/python bench/llm_metering.py \
        [--runs 15] [--tokens 1000]

Reuses bench/assistant_streaming.py's processes: the scripted model (a process of its own), two
stack servers (uvicorn over ``adiuva.asgi``, one with ``LLM_METERING_ENABLED=false``, each with its
own database) and this process as the device. Metering on adds to a turn the budget check (a hold
under the month's row lock), the record of the memory lookup's embedding before the first token,
and the record of the model call once its stream ended; per streamed chunk, one dict lookup.
Figures: median time from request to first ``stream_text`` (TTFT), median tokens per second while
streaming ``--tokens`` five-character tokens, and on / off ratios of both: of the medians, and the
median of each round's ratio (steadier when other work shares the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assistant_streaming import ROOT, Device, ModelProcess, Stack, free_port, one_run, stop, wait_for_port


def start_stack(label: str, model: ModelProcess, log, *, metering: bool) -> Stack:
    port = free_port()
    database = f"adiuva_meterbench_{label}"
    command = [sys.executable, str(ROOT / "bench" / "assistant_stack_server.py"), str(ROOT), str(port), database]
    env = {**os.environ, "LLM_METERING_ENABLED": "true" if metering else "false"}
    proc = subprocess.Popen([*command, model.base_url], stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the {label} stack server failed to start (see {log.name})")
    wait_for_port(port, proc)
    return Stack(label, str(ROOT), proc, port, json.loads(line)["token"])


async def measure(args, stacks: list[Stack], model: ModelProcess) -> dict[str, list[dict]]:
    devices = {s.label: Device(f"ws://127.0.0.1:{s.port}/api/v1/ws/device", s.proc.pid, s.token) for s in stacks}
    for device in devices.values():
        await device.connect()
    for label in devices:
        for _ in range(3):  # warm-up: graph compile, connections, caches
            await one_run(devices[label], model, 20, 0.0)
    runs: dict[str, list[dict]] = {label: [] for label in devices}
    for round_ in range(args.runs):  # interleaved, first one then the other first: the same load for both
        order = list(devices.items())
        for label, device in order if round_ % 2 else reversed(order):
            runs[label].append(await one_run(device, model, args.tokens, 0.0))
    for device in devices.values():
        await device.close()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("ADIUVA_TEST_RUN", "meterbench")
    model = ModelProcess()
    log_path = ROOT / ".data" / "llm_metering_stack.log"
    log_path.parent.mkdir(exist_ok=True)
    stacks: list[Stack] = []
    with log_path.open("w") as log:
        try:
            stacks.append(start_stack("off", model, log, metering=False))
            stacks.append(start_stack("on", model, log, metering=True))
            runs = asyncio.run(measure(args, stacks, model))
        finally:
            for proc in [s.proc for s in stacks] + [model.proc]:
                stop(proc)

    def median(label: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[label])

    print(f"LLM metering off vs on, median of {args.runs} interleaved chat turns of {args.tokens} tokens each")
    for label in ("off", "on"):
        print(
            f"  metering {label:3}: first text {median(label, 'first_text_ms'):7.2f} ms, "
            f"{median(label, 'streaming_tokens_per_s'):7.0f} tokens/s streaming"
        )
    ttft = median("on", "first_text_ms") / median("off", "first_text_ms")
    rate = median("off", "streaming_tokens_per_s") / median("on", "streaming_tokens_per_s")
    print(f"  on / off of the medians: time to first token {ttft:.3f}, time per streamed token {rate:.3f}")
    # Each round's two turns ran back to back: the median of their ratios is steadier on a shared machine.
    pairs = list(zip(runs["on"], runs["off"], strict=True))
    paired_ttft = statistics.median(on["first_text_ms"] / off["first_text_ms"] for on, off in pairs)
    paired_rate = statistics.median(off["streaming_tokens_per_s"] / on["streaming_tokens_per_s"] for on, off in pairs)
    print(f"  on / off, median of per-round ratios: time to first token {paired_ttft:.3f}, per token {paired_rate:.3f}")


if __name__ == "__main__":
    main()
