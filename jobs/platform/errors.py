"""Narrow exception classes for every user-facing failure.

The CLI turns any ``ColdstartError`` into one line on stderr and a non-zero
exit code, so messages must name the file / table / column / key at fault and
say what was expected. Anything that is not a ``ColdstartError`` is a bug and
keeps its traceback.
"""

from __future__ import annotations


class ColdstartError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1


class ConfigError(ColdstartError):
    """A config file is missing, unparsable, or fails validation."""


class InputError(ColdstartError):
    """A command-line argument or input table is missing or malformed."""


class TableNotFoundError(InputError):
    """A table (or the requested partition of it) does not exist."""


class SchemaMismatchError(ColdstartError):
    """Data to be written does not match the schema of the target table."""


class EmptyInputError(InputError):
    """An input has no rows where rows are required (e.g. an empty day)."""


class LLMError(ColdstartError):
    """The LLM endpoint failed in a way retries cannot fix."""


class ValidationFailedError(ColdstartError):
    """A publish/validation gate (row counts, ESS, alignment) was violated."""


class NotImplementedYetError(ColdstartError):
    """A subcommand whose issue has not landed yet."""

    exit_code = 2
