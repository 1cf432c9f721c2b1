"""The project's user-facing error type.

Every problem caused by the user's input (a file, a config value, a run dir) raises
:class:`InputError` with one sentence that names the problem; the CLIs print it as a single
line and exit with status 2, without a traceback.
"""


class InputError(ValueError):
    """Bad input from the user: a file, an image, a config value or a run dir."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT arrived: the job stopped (checkpointed where the generator does) and exits
    with 128 + the signal number. A BaseException, so Hydra does not record it as one failed sweep
    point and go on: an interrupted sweep stops."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signum)
        self.signum = int(signum)
        self.name = signal.Signals(signum).name

    def __str__(self) -> str:
        return f"interrupted by {self.name}: finished steps are kept; rerun the same command to resume"
