"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (a missing file, an unknown name, a malformed option); the message says what to do."""
