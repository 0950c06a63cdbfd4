"""Exit codes and the exceptions that map to them. Leaf module."""

EXIT_OK = 0
EXIT_PROBLEMS = 1  # problems found, verification failed, fix failed
EXIT_USAGE = 2  # bad flag, unreadable file, no such interpreter
EXIT_INTERNAL = 3  # a bug in tbdoctor

ISSUES_URL = "https://github.com/tbdoctor/tbdoctor/issues"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


def read_text(path, label: str) -> str:
    """The text of a file the user named; any failure is a UsageError starting with ``label``."""
    from pathlib import Path
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{label}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{label}: not a text file") from None
