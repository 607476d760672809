import logging


class DropDiscardedResultWarning(logging.Filter):
    """Dramatiq warns that a return value is discarded without its Results middleware.

    Ours is not discarded: the Lifecycle middleware stores it in the task row.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned a value that is not None" not in record.getMessage()
