"""What ``wanclip setup`` reports: progress events for the CLI and typed per-file results.

Nothing in ``models/`` prints: progress goes to an ``on_event`` callback, outcomes come back as these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Event:
    """Progress for the CLI: kind is plan | start | progress | done | warning."""

    kind: str
    file: str = ""
    done: int = 0
    total: int = 0
    message: str = ""


@dataclass
class FileResult:
    """status: installed | skipped (already verified) | ok (--check) | missing | wrong | failed."""

    dest: str
    status: str
    bytes: int = 0
    detail: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("installed", "skipped", "ok")


@dataclass
class SetupResult:
    models_dir: str
    files: list[FileResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fetched_bytes: int = 0

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    def to_dict(self) -> dict:
        return {"models_dir": self.models_dir, "ok": self.ok, "fetched_bytes": self.fetched_bytes,
                "warnings": self.warnings, "files": [asdict(f) for f in self.files]}


OnEvent = Callable[[Event], None]

