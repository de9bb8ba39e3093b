"""wanclip: turn a shot list into a finished Wan 2.2 film on your own ComfyUI.

The library, in three calls (see the README, "Use it from Python")::

    import wanclip

    plan = wanclip.plan_film("tomato_egg")                       # a shots file, or a shipped example
    result = wanclip.make_film(plan, servers=["http://127.0.0.1:8188"], on_event=print)
    print(result.exit_code, result.film)                         # 0 and the film's path when all went well

``stitch_film`` joins a rendered film folder again; every event handed to ``on_event`` is one of
the typed ``RenderEvent`` classes below; every error raised is a ``WanclipError``.

Each name is imported on first use (``__getattr__``), so ``import wanclip`` costs nothing: the
command line starts as fast as it did when this module held only ``__version__``.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_EVENTS = ("RenderEvent", "OtherEvent", "FilmPlanned", "FilmStitching", "FilmStitched", "FilmKept",
           "RenderWarning", "ServerFound", "ServerUnreachable", "ServerDown", "ServerBack", "SocketLost",
           "SocketBack", "ShotClip", "ShotSkipped", "ShotDone", "ShotQueued", "ShotReattached", "ShotSubmitRetry",
           "ShotStarted", "ShotCached", "ShotNode", "ShotProgress", "ShotDownloadRetry", "ShotFailed", "ShotLost",
           "ShotCancelling", "ShotCancelled", "PostQueued", "PostStarted", "PostDone", "PostFailed")
_ERRORS = ("WanclipError", "UsageError", "ShotsFileError", "WorkflowError", "ServerError", "LocalIOError",
           "PromptRejected", "FolderRefused", "PreflightError", "ClipError", "StitchError", "AssetError", "Interrupted")

# name -> the module that defines it (imported when the name is first used)
_HOMES: dict[str, str] = {
    "plan_film": "wanclip.planning.plan",
    "Plan": "wanclip.planning.plan",
    "PlannedShot": "wanclip.planning.plan",
    "make_film": "wanclip.film",
    "run_film": "wanclip.film",
    "FilmResult": "wanclip.film",
    "RenderOptions": "wanclip.render.loop",
    "stitch_film": "wanclip.stitch.join",
    "StitchResult": "wanclip.stitch.run",
    "Ledger": "wanclip.ledger",
    "load_ledger": "wanclip.ledger",
    **dict.fromkeys(_EVENTS, "wanclip.render.events"),
    **dict.fromkeys(_ERRORS, "wanclip.errors"),
}

__all__ = ["__version__", *_HOMES]


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'wanclip' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # the next use is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

