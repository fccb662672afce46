"""What a Microsoft Graph client costs a worker: msgraph-sdk (+ msal) against plain httpx.

    .venv/bin/python bench/connectors_sdk_cost.py [--sdk-python /path/to/python] [--runs 7]

Each stack is imported (and, for the SDKs, a client and the request builder the connectors use
are built, no network) in a fresh interpreter; the figures are the median import time and the
resident memory the imports added, printed as ratios to a bare ``import httpx`` measured by the
same interpreter in the same run. msgraph-sdk and msal need not be in the project's venv:
``--sdk-python`` names an interpreter that has them (stacks it lacks are reported as missing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = r"""
import json, os, time
def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
before = rss_kib()
start = time.perf_counter()
exec(compile(CODE, "<stack>", "exec"))
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "rss_kib": rss_kib() - before}))
"""

STACKS: dict[str, str] = {
    "httpx (baseline)": "import httpx",
    # msal's client objects fetch the authority's metadata when built, so only the import is measured.
    "httpx + msal (import)": "import httpx, msal",
    "msgraph-sdk + msal (delta builder)": """
import msal
from kiota_abstractions.authentication import (
    AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphServiceClient, GraphRequestAdapter

class Static(AccessTokenProvider):
    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return "token"
    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator(["graph.microsoft.com"])

client = GraphServiceClient(request_adapter=GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(Static())))
client.me.mail_folders.by_mail_folder_id("inbox").messages.delta
client.me.chats.by_chat_id("x").messages
""",
    "google-api-python-client (gmail build)": """
import httplib2
from googleapiclient.discovery import build
build("gmail", "v1", http=httplib2.Http(), static_discovery=True, cache_discovery=False)
""",
}


def measure(python: str, code: str, runs: int) -> dict[str, float] | None:
    samples = []
    for _ in range(runs):
        result = subprocess.run(
            [python, "-c", f"CODE = {code!r}\n{PROBE}"], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            return None
        samples.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(s["seconds"] for s in samples),
        "rss_kib": statistics.median(s["rss_kib"] for s in samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdk-python", default=sys.executable, help="an interpreter with msgraph-sdk and msal")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    interpreters = [sys.executable] if args.sdk_python == sys.executable else [sys.executable, args.sdk_python]
    print(f"median of {args.runs} fresh interpreters; ratios to 'import httpx' in the same interpreter\n")
    print(f"{'stack':42} {'interpreter':>12} {'import ms':>10} {'x httpx':>8} {'RSS MiB':>8} {'x httpx':>8}")
    for index, python in enumerate(interpreters):
        baseline = measure(python, STACKS["httpx (baseline)"], args.runs)
        if baseline is None:
            print(f"{python}: cannot import httpx")
            continue
        for name, code in STACKS.items():
            figures = baseline if name.startswith("httpx (baseline)") else measure(python, code, args.runs)
            label = "project" if index == 0 else "sdk"
            if figures is None:
                print(f"{name:42} {label:>12} {'missing':>10}")
                continue
            print(
                f"{name:42} {label:>12} {figures['seconds'] * 1000:10.1f} "
                f"{figures['seconds'] / baseline['seconds']:8.1f} {figures['rss_kib'] / 1024:8.1f} "
                f"{figures['rss_kib'] / max(baseline['rss_kib'], 1):8.1f}"
            )


if __name__ == "__main__":
    main()
