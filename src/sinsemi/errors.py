"""The project's user-facing error type.

Every problem caused by the user's input (a file, a config value, a run dir) raises
:class:`InputError` with one sentence that names the problem; the CLIs print it as a single
line and exit with status 2, without a traceback.
"""


class InputError(ValueError):
    """Bad input from the user: a file, an image, a config value or a run dir."""
