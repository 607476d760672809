import json
from typing import Any

from django.core.management.base import BaseCommand

from conveyor.scheduling import declarations


class Command(BaseCommand):
    help = "Sync the schedules declared in code (@periodic) into the database (the leading scheduler also does this)."

    def handle(self, *args: Any, **options: Any) -> None:
        report = declarations.sync()
        self.stdout.write(json.dumps(report))
