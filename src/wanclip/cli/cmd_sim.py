"""`wanclip sim`: run the simulated ComfyUI (for CI, the demo, and trying wanclip without a GPU)."""

from __future__ import annotations

from pathlib import Path

import typer

from wanclip.cli.base import TIMING, app, console, handle_errors, import_sim, in_range
from wanclip.errors import WanclipError

DEFAULT_PROFILE = "0.33"  # the newest verified profile (wanclip.sim.profiles.NEWEST_VERIFIED; aiohttp-free here)


@app.command("sim")
def sim(
    host: str = typer.Option(None, "--host", metavar="ADDRESS", rich_help_panel="Server", help="Address to bind (default 127.0.0.1). A non-loopback address is only used when given here."),
    port: int = typer.Option(8188, "--port", metavar="PORT", callback=in_range(0, 65535), rich_help_panel="Server", help="Port for HTTP and /ws (0 picks a free one)."),
    output_dir: Path = typer.Option(Path("sim-comfyui/output"), "--output-dir", metavar="FOLDER", rich_help_panel="Server", help="ComfyUI's output folder; temp/ and input/ sit beside it."),
    models: Path = typer.Option(None, "--models", metavar="FILE|FOLDER", rich_help_panel="Server", help="Models the server has: a YAML/JSON file (folder -> file names) or a ComfyUI models/ folder. Default: the files of the shipped workflows (text-to-video and image-to-video)."),
    load_seconds: float = typer.Option(2.0, "--load-seconds", metavar="SECONDS", rich_help_panel=TIMING, help="Time to load the full model set the first time it is used."),
    step_seconds: float = typer.Option(0.5, "--step-seconds", metavar="SECONDS", rich_help_panel=TIMING, help="Seconds per sampler step for an 81-frame clip (longer clips cost more, quadratically)."),
    faults: str = typer.Option("", "--faults", metavar="FAULTS", rich_help_panel="Faults", help="Faults to inject, comma-separated: fail:N[@NODE][=MSG], stall:N[@NODE], restart:N, down_for:N=SECONDS, ws_close:N, stale_ws:SECONDS, send_raw:N=TEXT, slow_interrupt:SECONDS, encode_fail:N[=MSG], endless_view, wrong_view_size:BYTES, delay:ROUTE=SECONDS, http500:ROUTE[*COUNT], http502_after:ROUTE[*COUNT]."),
    with_frame_interpolation: bool = typer.Option(False, "--with-frame-interpolation", rich_help_panel="Server", help="Have ComfyUI-Frame-Interpolation (RIFE VFI) installed, for `post: {interpolate: N}` on a version without core FrameInterpolate (0.38 has it)."),
    with_wanclip_nodes: bool = typer.Option(False, "--with-wanclip-nodes", rich_help_panel="Server", help="Have wanclip's node pack installed: WanclipSaveVideo returns at once and its file appears --video-delay seconds later (renamed from .part), with a 'wanclip.video' event; the encode_fail:N fault fails prompt N's encode."),
    video_delay: float = typer.Option(1.5, "--video-delay", metavar="SECONDS", rich_help_panel=TIMING, help="With --with-wanclip-nodes: seconds from the node's return to the finished file."),
    drift: float = typer.Option(0.0, "--drift", metavar="FRACTION", rich_help_panel="Faults", help="Colour drift of each image-to-video link, as a chain of real I2V passes shows it (VAE encode, sampling and decode shift colours a little each time): a clip started from an image ends on that image with red x (1 + DRIFT) and blue x (1 - DRIFT), outside the test-card band. 0 (default) = none; e.g. 0.03. Between -1 and 1."),
    comfy_version: str = typer.Option(DEFAULT_PROFILE, "--comfy-version", "--profile", metavar="VERSION", rich_help_panel="Server", help="ComfyUI version to speak (default the newest verified one, 0.33). Verified against a real server's recordings, message for message: 0.3.64, 0.9 (0.9.2: throttled progress, read-only /api/jobs) and 0.33 (0.33.0: jobs API with cancel routes, UUID prompt ids, node replacements, DynamicCombo SaveVideo; a re-posted id runs again). 0.38 is built from source, unverified: it adds what the 0.38.1 code was read to do (409 on a known prompt_id, credential handshake, activity/seconds in progress_state, RAM-pressure cache), none of which a real 0.33.0 does."),
) -> None:
    """Run a simulated ComfyUI that renders test-card videos (no GPU).

    It speaks the real protocol of ComfyUI 0.3.64, 0.9 or 0.33 (each checked against a real
    server's recordings) or 0.38 (built from source, unverified) (--comfy-version), for CI, the
    demo and trying wanclip without a GPU; it runs until Ctrl-C.

    Exit codes: 2 refused at start (bad --faults, --models, --drift, or the port is taken),
    130 Ctrl-C, 143 SIGTERM.
    """
    with handle_errors():
        sim_package = import_sim()
        parse_faults, serve_in_thread = sim_package.parse_faults, sim_package.serve_in_thread
        try:
            spec = parse_faults(faults)
            handle = serve_in_thread(
                output_dir, host=host or "127.0.0.1", port=port, models=models, load_seconds=load_seconds,
                step_seconds=step_seconds, faults=spec, allow_remote=host is not None, comfy_version=comfy_version,
                nodes=("wanclip",) * with_wanclip_nodes + ("frame-interpolation",) * with_frame_interpolation, video_delay=video_delay, drift=drift,
            )
        except (ValueError, OSError) as exc:
            raise WanclipError(str(exc), hint="check --host/--port/--models/--faults/--comfy-version/--drift") from exc
        console.print(f"simulated ComfyUI {handle.profile.version} on {handle.url} (outputs in {handle.output_dir}); "
                      "Ctrl-C stops it")
        try:
            handle.wait()
        finally:
            handle.stop()
