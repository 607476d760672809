"""The message encoder: JSON only (never pickle), and count what cannot be decoded."""

import logging
from typing import Any

from dramatiq.encoder import JSONEncoder

from conveyor import metrics

logger = logging.getLogger(__name__)


class StrictJSONEncoder(JSONEncoder):
    """Dramatiq's JSON encoder, plus a count and a log line for undecodable bodies.

    Dramatiq's RabbitMQ consumer rejects such a message (so it is dead-lettered to
    <queue>.XQ) and goes on; no middleware hook sees it, so this is where we count it.
    """

    def decode(self, data: bytes) -> dict[str, Any]:
        try:
            return super().decode(data)
        except Exception:
            metrics.DEAD_LETTERS.labels(reason="undecodable").inc()
            logger.error("Dead-lettering an undecodable message (%d bytes): %r", len(data), data[:200])
            raise
