"""Register this server's Stripe webhook endpoint (or adopt one made in the dashboard / CLI)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.billing.webhooks import webhook_endpoint_adopt, webhook_endpoint_create


class Command(BaseCommand):
    help = (
        "Create a Stripe webhook endpoint for BASE_URL and store it with its signing secret in dj-stripe; "
        "or --adopt an existing endpoint id with --secret."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("base_url", nargs="?", help="Public origin, e.g. https://api.adiuva.app")
        parser.add_argument(
            "--contract-path", action="store_true", help="Use /api/v1/billing/webhook instead of a uuid URL."
        )
        parser.add_argument("--adopt", metavar="ENDPOINT_ID", help="An endpoint created elsewhere (we_...).")
        parser.add_argument("--secret", help="Its signing secret (whsec_...), shown only where it was created.")

    def handle(self, *args: object, **options: str | bool | None) -> None:
        if options["adopt"]:
            if not options["secret"]:
                raise CommandError("--adopt needs --secret")
            endpoint = webhook_endpoint_adopt(endpoint_id=str(options["adopt"]), secret=str(options["secret"]))
        elif options["base_url"]:
            endpoint = webhook_endpoint_create(
                base_url=str(options["base_url"]), contract_path=bool(options["contract_path"])
            )
        else:
            raise CommandError("give BASE_URL, or --adopt ENDPOINT_ID --secret SECRET")
        self.stdout.write(f"webhook endpoint {endpoint.id} -> {endpoint.url}")
