"""Errors the CLI reports as one line per problem, with exit status 2 and no traceback."""


class UserInputError(Exception):
    """Bad input from the user: a recipe, a data file, a model reference.

    `problems` holds one line per problem, each naming the file and field path.
    """

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class NonFiniteError(Exception):
    """A loss or gradient became NaN or inf during training; stops that cell only."""

    def __init__(self, step: int, what: str):
        self.step = step
        self.what = what
        super().__init__(f"non-finite {what} at step {step}")
