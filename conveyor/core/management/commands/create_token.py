from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conveyor import tokens


class Command(BaseCommand):
    help = "Create an API token and print it (the secret is shown once; only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="cli")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=["read", "write", "admin"],
            help="repeat for several; default: read and write",
        )

    def handle(self, *args: Any, name: str, scopes: list[str] | None, **options: Any) -> None:
        try:
            token, secret = tokens.create(name, scopes or ["read", "write"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created token {token.name!r} with scopes {', '.join(token.scopes)}:")
        # Last line of output, alone, so `TOKEN=$(make token | tail -1)` works.
        self.stdout.write(secret)
