"""What policy services raise when a run cannot be started, sent or read."""


class PolicyRunError(Exception):
    """A run that cannot be started, sent or read (the message says why)."""
