import logging
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from conveyor import heartbeat, outbox

logger = logging.getLogger("conveyor.relay")


class Command(BaseCommand):
    help = "Publish outbox entries whose lease ran out and deferred tasks that are due. Safe to run several."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one sweep, then exit")

    def handle(self, *args: Any, once: bool = False, **options: Any) -> None:
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        interval = settings.CONVEYOR_RELAY_INTERVAL_SECONDS
        backoff = interval
        logger.info("Relay started (interval %.2fs)", interval)
        while not stopping:
            # Alive and looping (even while the broker or database is down): the
            # container healthcheck reads this.
            heartbeat.beat("relay")
            try:
                entries = outbox.claim_due()
                published = outbox.deliver(entries) if entries else 0
                if published:
                    logger.info("Relayed %d tasks", published)
                backoff = interval if published == len(entries) else min(backoff * 2, 10)
                if once:
                    break
                if published < outbox.CLAIM_LIMIT:
                    time.sleep(backoff)
            except Exception:
                logger.exception("Relay sweep failed; retrying in %.1fs", backoff)
                backoff = min(backoff * 2, 10)
                time.sleep(backoff)
            finally:
                close_old_connections()
        logger.info("Relay stopped")
