"""Errors the user can fix: the CLI prints their message on one line and exits with status 2."""


class UserError(Exception):
    """Bad input (a name, a path, a flag value): the message says what to change."""
