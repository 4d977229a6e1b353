"""The two kinds of failure the CLI tells apart (README.md: exit 2 bad input, exit 1 runtime error)."""


class ComposerError(Exception):
    """A failure with a one-line message meant for the user; the CLI prints it without a traceback."""

    exit_code = 1


class UserError(ComposerError):
    """Bad usage or bad input: the user can fix it by changing what they typed (exit 2)."""

    exit_code = 2


class JobFailed(ComposerError):
    """A job ran and failed, or a runtime resource (store, cluster) misbehaved (exit 1)."""

    exit_code = 1
