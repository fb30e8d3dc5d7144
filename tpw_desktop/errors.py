"""Errors meant for the user: one line that names the thing and the problem."""


class TpwError(Exception):
    """A failure the user can act on; the CLI prints it without a traceback."""


class ModelFileError(TpwError):
    """The model file is missing, unreadable or not a usable GGUF."""

    def __init__(self, path, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")
