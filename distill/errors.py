"""User-facing errors: one clear line, non-zero exit.

Raise `UserError` for anything a user can cause (bad file, missing column, config mismatch);
`distill.cli` prints its message on one line to stderr and exits with status 2.
"""


class UserError(Exception):
    """An error caused by input the user can fix; the message names file/line/field."""
