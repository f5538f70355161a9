"""User-facing errors: one clear line, non-zero exit.

Raise `UserError` for anything a user can cause (bad file, missing column, config mismatch);
`distill.cli` prints its message on one line to stderr and exits with status 2. Raise
`RunFailed` when a stage ran but its work failed (every request to the teacher failed, say):
the same one line, exit status 1, and what was written stays (a re-run resumes).
"""


class UserError(Exception):
    """An error caused by input the user can fix; the message names file/line/field."""

    exit_code = 2


class RunFailed(UserError):
    """A stage ran and wrote what it could, but too little of its work succeeded (exit status 1)."""

    exit_code = 1
