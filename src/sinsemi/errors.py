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


def pickle_refusal(path, error: BaseException) -> InputError | None:
    """The one-line error for a file ``torch.load(weights_only=True)`` refused because its pickle
    asks for more than tensors and plain containers (a global such as ``os.system``, an object, an
    opcode the safe unpickler lacks); None for any other failure (a truncated or corrupt file), which
    the caller words itself. Torch's own message suggests retrying with ``weights_only=False``: that
    would run the file's code, which this project never does, so it is not repeated."""
    import pickle

    text = str(error)
    if not (isinstance(error, pickle.UnpicklingError) and "weights_only" in text):
        return None
    detail = next((ln.strip().rstrip(".") for ln in text.splitlines()
                   if ln.strip().startswith(("Trying to load unsupported", "Unsupported"))), "")
    return InputError(f"refusing to load {path}: it holds pickled code or objects, not only tensors"
                      f"{f' ({detail})' if detail else ''}; this project loads weights only and never runs a file's "
                      "pickle code: use a file written by sinsemi")
