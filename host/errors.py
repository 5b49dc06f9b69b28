"""The one error type a user sees: where the problem is and why, on one line."""


class InputError(Exception):
    """Bad input from a user: a file, a field or an OSC address, and the reason.

    ``str(err)`` is the single line shown on the terminal, in the journal and on the wire.
    """

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = str(where)
        self.reason = reason
