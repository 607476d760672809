"""Dramatiq's Retries, deciding as it always does, with the retry itself kept in the database.

Dramatiq's Retries publishes the retry message (to `<queue>.DQ`, held in a worker's memory
until due) in its after-hook, before the task's row says READY: a retry could arrive
while the row still said RUNNING, and a retry held in memory outlives RabbitMQ's
consumer_timeout. Here Retries makes its decision (max_retries, throws, retry_when, its
backoff with jitter) and the message it would have published is kept on the message
instead. Lifecycle then writes the row READY with an outbox entry due at the end of the
backoff, in one transaction: the retry exists only once the row says READY, and waits
in the database.
"""

from typing import Any

from dramatiq.middleware import retries


class _Holding:
    """The broker as Retries sees it: everything as usual, but enqueue() only notes the retry."""

    def __init__(self, broker: Any) -> None:
        self._broker = broker
        self.held: tuple[Any, int] | None = None

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        self.held = (message, delay or 0)
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)


class Retries(retries.Retries):
    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        holding = _Holding(broker)
        super().after_process_message(holding, message, result=result, exception=exception)
        if holding.held is not None:
            retry, delay = holding.held
            message._conveyor_retry = (retry.options.get("retries", 0), delay)
