"""``manage.py device``: the reference device client, for trying the server without the desktop app
(``run`` also answers agent runs: it reads the folders an ``agent_run`` names and sends them).
It declares the capabilities it understands (``agent_progress``, ``usage_notice``) and prints the
progress of the user's agent runs as it arrives; ``--seed`` says hello as the
seed's client does (no capabilities).

    manage.py device run  --user alice@example.com            # serve tool calls until Ctrl-C
    manage.py device chat --user alice@example.com "What is due today?"
    manage.py device call --user alice@example.com select tasks '{"status": "todo"}'

``--user`` opens a session for that account (operators on the server); ``--token`` uses an
access token obtained elsewhere. The device keeps its tables in ``--db`` (SQLite).
"""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from django.core.management.base import BaseCommand, CommandError

from apps.devices.client import CLIENT_CAPABILITIES, DeviceClient, LocalStore


class Command(BaseCommand):
    help = "Run the reference device client against a server (run | chat | call)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("mode", choices=["run", "chat", "call"])
        parser.add_argument("words", nargs="*", help="chat: the message; call: action table [filters-json]")
        parser.add_argument(
            "--url", default="ws://127.0.0.1:8000", help="the server (ws://host:port) or the full socket URL"
        )
        parser.add_argument("--token", help="an access JWT")
        parser.add_argument("--user", help="e-mail of an account to open a session for (instead of --token)")
        parser.add_argument("--device-id", default="cli-device")
        parser.add_argument("--db", default="device.sqlite3", help="the device's SQLite file")
        parser.add_argument("--timeout", type=float, default=10.0)
        parser.add_argument("--seed", action="store_true", help="say hello without capabilities (the seed client)")

    def handle(self, *args, **options) -> None:
        token = options["token"] or self._token_for(options["user"])
        asyncio.run(self._main(options, token))

    def _token_for(self, email: str | None) -> str:
        if not email:
            raise CommandError("give --token or --user")
        from apps.accounts.models import User
        from apps.accounts.tokens import tokens_issue

        user = User.objects.filter(email=email).first()
        if user is None:
            raise CommandError(f"no user {email}")
        return tokens_issue(user=user).access_token

    async def _main(self, options: dict, token: str) -> None:
        client = DeviceClient(
            options["url"],
            token,
            device_id=options["device_id"],
            store=LocalStore(options["db"]),
            platform="cli",
            capabilities=None if options["seed"] else list(CLIENT_CAPABILITIES),
        )
        client.on_progress = self._show_progress
        await client.connect()
        if not options["seed"]:
            welcome = await client.next_frame(options["timeout"])  # the answer to the hello, before any other
            self.stdout.write(
                f"server protocol {welcome.get('protocol')}; capabilities: {', '.join(welcome.get('capabilities', []))}"
            )
        try:
            if options["mode"] == "run":
                self.stdout.write(
                    f"device {client.device_id} online; serving tool calls and agent runs (Ctrl-C to stop)"
                )
                code = await client.run_forever()
                self.stdout.write(f"closed by the server (code {code})")
            elif options["mode"] == "chat":
                await self._chat(client, " ".join(options["words"]) or "Hello")
            else:
                await self._call(client, options)
        finally:
            await client.close()

    def _show_progress(self, frame: dict) -> None:
        self.stdout.write(progress_line(frame))

    async def _chat(self, client: DeviceClient, message: str) -> None:
        async for frame in client.home_request(message):
            if frame["type"] == "stream_text":
                self.stdout.write(frame["chunk"], ending="")
                self.stdout.flush()
            elif frame["type"] == "stream_end":
                self.stdout.write("")
                for mutation in frame.get("mutations", []):
                    self.stdout.write(f"  mutation: {json.dumps(mutation)}")
            elif frame["type"] == "error":
                raise CommandError(f"{frame['code']}: {frame['message']}")
            else:
                self.stdout.write(f"[{frame['type']}] {json.dumps(frame)}")

    async def _call(self, client: DeviceClient, options: dict) -> None:
        """Issue a tool call to this very device through the server's call_device (channel layer)."""
        from apps.accounts.models import User
        from apps.devices.services import call_device

        if len(options["words"]) < 2 or not options["user"]:
            raise CommandError("call needs --user and: action table [filters-json]")
        action, table, *rest = options["words"]
        user = await sync_to_async(User.objects.get)(email=options["user"])
        filters = json.loads(rest[0]) if rest else None
        from apps.devices.errors import DeviceOfflineError

        # The hello is recorded asynchronously by the server: until then the device reads as offline.
        for attempt in range(50):
            try:
                result = await call_device(
                    user_id=user.id,
                    device_id=client.device_id,
                    action=action,
                    table=table,
                    filters=filters if action == "select" else None,
                    data=filters if action != "select" else None,
                    timeout=options["timeout"],
                )
                break
            except DeviceOfflineError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        self.stdout.write(json.dumps(result, indent=2))


def progress_line(frame: dict) -> str:
    """One line per ``agent_progress`` frame: ``agent 1a2b… run 3c4d… [extracting] files 12, items 5/3``."""
    return (
        f"agent {frame['agent_id'][:8]} run {frame['run_id'][:8]} [{frame['phase']}] "
        f"files {frame['files_read']}, items extracted {frame['items_extracted']}, "
        f"delivered {frame['items_delivered']}"
    )
