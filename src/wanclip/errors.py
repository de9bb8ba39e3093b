"""The one exception tree of wanclip.

Every error a person can see is a ``WanclipError``: a message saying what went wrong and where,
a hint saying what to do, and the exit code the CLI ends with. Core code raises these; only the
CLI prints them. This module imports nothing from wanclip.

Third-party and OS errors are translated into these once, where they happen: requests and
websocket errors in ``comfy.client`` (``ServerError``), ``OSError`` of our own files where they are
written (``LocalIOError``), a malformed ``--server`` or ``--header`` where it is parsed
(``UsageError``).
"""

from __future__ import annotations

import errno as errno_codes
import os

EXIT_OK = 0
EXIT_SHOTS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
NO_SPACE = (errno_codes.ENOSPC, errno_codes.EDQUOT)  # a full disk, a used-up quota: the same remedy


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


class UsageError(WanclipError):
    """A value the person gave is malformed (a --server URL, a --header): nothing was tried (exit 2).
    ``option`` names it; its text is not repeated when it may hold a secret."""

    def __init__(self, message: str, hint: str = "", option: str | None = None):
        super().__init__(message, hint)
        self.option = option


class LocalIOError(WanclipError, OSError):
    """A file on this machine could not be read or written (a full disk, a read-only folder): the
    server did nothing wrong. ``path``: the file; ``errno``: the OS's error number (exit 1).

    Also an ``OSError``, so code that guards a best-effort write with ``except OSError`` (a cache)
    still catches it after the translation."""

    exit_code = EXIT_SHOTS_FAILED

    def __init__(self, message: str, hint: str = "", path: str | None = None, errno: int | None = None,
                 exit_code: int | None = None):
        super().__init__(message, hint, exit_code)
        self.path = path
        self.errno = errno

    @property
    def no_space(self) -> bool:
        """The disk (or the quota) is full: every later write there fails too."""
        return self.errno in NO_SPACE

    @classmethod
    def from_os(cls, exc: OSError, path: object, doing: str = "write") -> LocalIOError:
        """The one translation of an ``OSError`` met while ``doing`` (read, write) ``path``."""
        folder = os.path.dirname(str(path)) or "."
        if exc.errno in NO_SPACE:
            full = "the disk is full" if exc.errno == errno_codes.ENOSPC else "the disk quota is used up"
            reason = f"{full} ({exc.strerror})" if exc.strerror else full
            hint = f"free some space on the disk of {folder} and rerun: finished shots are kept"
        elif exc.errno in (errno_codes.EACCES, errno_codes.EPERM, errno_codes.EROFS):
            reason, hint = exc.strerror or str(exc), f"make {folder} writable (or choose another --out) and rerun"
        else:
            reason, hint = exc.strerror or str(exc), "rerun: finished shots are kept"
        return cls(f"cannot {doing} {path}: {reason}", hint, path=str(path), errno=exc.errno)


class ServerError(WanclipError):
    """A ComfyUI server could not be reached or answered something unusable (``server``: its URL,
    printable, without credentials)."""

    exit_code = EXIT_SHOTS_FAILED

    def __init__(self, message: str, hint: str = "", server: str | None = None, exit_code: int | None = None,
                 transient: bool = False):
        super().__init__(message, hint, exit_code)
        self.server = server
        self.transient = transient  # no answer, a 5xx, a dropped connection: the same call may work later


class PromptRejected(WanclipError):
    """ComfyUI refused a prompt at validation (HTTP 400): nothing ran on the GPU (exit 2).

    ``server``: the URL that refused it (printable, without credentials), so a caller can ask that
    server more (its ``/object_info``) with its own credentials; ``node_errors`` and ``error`` as
    ComfyUI sent them; ``shot``: the shot whose prompt it was, where known."""

    def __init__(self, message: str, node_errors: dict | None = None, error: dict | None = None,
                 hint: str = "", shot: str | None = None, server: str | None = None):
        super().__init__(message, hint)
        self.node_errors = node_errors or {}
        self.error = error or {}
        self.shot = shot
        self.server = server


class ServeError(WanclipError):
    """`wanclip serve` cannot start or keep its servers (exit 2 when refused before starting
    anything, 1 when a server failed)."""


class FolderRefused(WanclipError):
    """The film folder is not this film's to write (exit 2, before any GPU work): it holds another
    film's ledger, or files wanclip did not make. ``folder``: that folder."""

    def __init__(self, message: str, hint: str = "", folder: str | None = None):
        super().__init__(message, hint)
        self.folder = folder


class PreflightError(WanclipError):
    """A check before any GPU work failed (exit 2)."""


class ClipError(WanclipError):
    """A shot's output is missing, unsafe or not the clip that was asked for (that shot fails)."""

    exit_code = EXIT_SHOTS_FAILED


class StitchError(WanclipError):
    """Joining clips into a film failed. ``errno``: the OS's error number where that was the cause
    (ffmpeg found the disk full: ENOSPC), else None."""

    exit_code = EXIT_SHOTS_FAILED
    errno: int | None = None


class AssetError(WanclipError):
    """A model file could not be fetched or verified."""

    exit_code = EXIT_SHOTS_FAILED


class Interrupted(WanclipError):
    """The user pressed Ctrl-C; state was saved and a rerun resumes."""

    exit_code = EXIT_INTERRUPTED
