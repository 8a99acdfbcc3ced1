"""Exceptions that map to exit codes: usage and config errors exit 2 with one clear line."""


class UsageError(Exception):
    """Bad input from the user (unknown pid/table/row, bad flag). Exit code 2."""


class ConfigError(UsageError):
    """Unknown config key or wrong type. Raised before anything is written. Exit code 2."""


class DataMissing(UsageError):
    """A full-scale dataset is not on disk. The message says what to fetch and where. Exit code 2."""


class Diverged(Exception):
    """A guarded metric (the loss) became NaN or inf."""

    def __init__(self, step: int, metric: str, value: float):
        super().__init__(f"{metric}={value} at step {step}")
        self.step, self.metric, self.value = step, metric, value


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived; a checkpoint was written; `--resume` continues."""
