"""The one exception tree of wanclip.

Every error a person can see is a ``WanclipError``: a message saying what went wrong and where,
a hint saying what to do, and the exit code the CLI ends with. Core code raises these; only the
CLI prints them. This module imports nothing from wanclip.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SHOTS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class WanclipError(Exception):
    """Base of every error wanclip reports to a person."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str = "", exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ShotsFileError(WanclipError):
    """The shots file cannot be read or does not validate (exit 2)."""

    def __init__(self, path: str, message: str, hint: str = ""):
        super().__init__(f"{path}: {message}", hint)
        self.path = path


class WorkflowError(WanclipError):
    """A workflow graph cannot be read or lacks a role wanclip needs (exit 2)."""

    def __init__(self, message: str, hint: str = "", role: str | None = None, path: str | None = None):
        super().__init__(f"{path}: {message}" if path else message, hint)
        self.role = role
        self.path = path


class ServerError(WanclipError):
    """A ComfyUI server could not be reached or answered something unusable."""

    exit_code = EXIT_SHOTS_FAILED

    def __init__(self, message: str, hint: str = "", server: str | None = None, exit_code: int | None = None,
                 transient: bool = False):
        super().__init__(message, hint, exit_code)
        self.server = server
        self.transient = transient  # no answer, a 5xx, a dropped connection: the same call may work later


class PromptRejected(WanclipError):
    """ComfyUI refused a prompt at validation (HTTP 400): nothing ran on the GPU (exit 2)."""

    def __init__(self, message: str, node_errors: dict | None = None, error: dict | None = None,
                 hint: str = "", shot: str | None = None):
        super().__init__(message, hint)
        self.node_errors = node_errors or {}
        self.error = error or {}
        self.shot = shot


class ServeError(WanclipError):
    """`wanclip serve` cannot start or keep its servers (exit 2 when refused before starting
    anything, 1 when a server failed)."""


class PreflightError(WanclipError):
    """A check before any GPU work failed (exit 2)."""


class ClipError(WanclipError):
    """A shot's output is missing, unsafe or not the clip that was asked for (that shot fails)."""

    exit_code = EXIT_SHOTS_FAILED


class StitchError(WanclipError):
    """Joining clips into a film failed."""

    exit_code = EXIT_SHOTS_FAILED


class AssetError(WanclipError):
    """A model file could not be fetched or verified."""

    exit_code = EXIT_SHOTS_FAILED


class Interrupted(WanclipError):
    """The user pressed Ctrl-C; state was saved and a rerun resumes."""

    exit_code = EXIT_INTERRUPTED
