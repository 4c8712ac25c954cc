"""The project's error type: bad input that the CLI reports as one line and exit 2."""


class RLComposerError(ValueError):
    """Bad input from a user: a file, a name, a value or a config key.

    The message names the input and says why it is wrong, in one line.
    """
