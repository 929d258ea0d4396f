"""The one exception a user sees as a single line: a problem they can fix."""


class UserError(Exception):
    """A problem the user can fix (missing data, a bad setting): printed as one line, no traceback.

    Library code raises it; only the scripts' `run_main` turns it into a message and an exit status.
    """
