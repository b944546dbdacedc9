"""Errors that mean "the input or environment is wrong": the CLI prints them as one line and exits 2."""


class UserError(Exception):
    """Bad input or environment (missing file, wrong format, absent dataset): the message names file and fix."""


class AudioError(UserError):
    """An audio file that cannot be read or has the wrong shape."""
