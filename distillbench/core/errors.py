"""Errors the CLI reports as one line per problem, with exit status 2 and no traceback."""


class UserInputError(Exception):
    """Bad input from the user: a recipe, a data file, a model reference.

    `problems` holds one line per problem, each naming the file and field path.
    """

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class CellFailure(Exception):
    """Training of one cell cannot go on; the cell is marked failed and the run goes on."""

    def __init__(self, step: int, message: str):
        self.step = step
        super().__init__(message)


class NonFiniteError(CellFailure):
    """A loss or gradient became NaN or inf during training."""

    def __init__(self, step: int, what: str):
        self.what = what
        super().__init__(step, f"non-finite {what} at step {step}")
