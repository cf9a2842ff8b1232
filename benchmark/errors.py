"""User-facing errors: one line that names the culprit, never a traceback wall."""


class BenchError(Exception):
    """An error caused by the user's input or environment (bad config, missing data, offline download).

    The CLI prints ``str(error)`` on one line and exits non-zero; finished results are never touched.
    """

    def __init__(self, message: str) -> None:
        # Collapse newlines so the message stays one line whatever the caller formatted.
        super().__init__(" ".join(str(message).split()))


class CellFailure(BenchError):
    """A grid cell could not finish (NaN loss, OOM, missing data); the grid records it and goes on."""
