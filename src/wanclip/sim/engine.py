"""The job state machine: queue, worker, cache, resident models, history, events, faults.

Thread model like ComfyUI: HTTP handlers call in from the server's loop, one worker thread runs
prompts. Events leave through `emit(type, data, sid)`; sid None means broadcast.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wanclip.sim import jobs, nodes, post_nodes, post_schemas, submission, wanclip_nodes
from wanclip.sim.background import BackgroundEncodes
from wanclip.sim.catalog import FOLDER_KEYS, FOLDER_KEYS_09, Catalog, load_models
from wanclip.sim.faults import Faults
from wanclip.sim.graph import ExecutionList, is_link, signatures
from wanclip.sim.node_base import Ctx, NodeError
from wanclip.sim.profiles import CACHE_CLASSIC, Profile, get_profile
from wanclip.sim.run import Run, progress_due
from wanclip.sim.validate import validate_prompt

MAXIMUM_HISTORY_SIZE = 10000


@dataclass
class SimConfig:
    """Settings of one simulated server. Temp/input folders sit beside output, as in ComfyUI."""

    output_dir: Path
    models: str | Path | dict | None = None
    load_seconds: float = 2.0
    step_seconds: float = 0.5
    nodes: tuple[str, ...] = ()  # custom node packs installed: "wanclip" (WanclipSaveVideo), "frame-interpolation" (RIFE VFI)
    video_delay: float = 1.5  # WanclipSaveVideo: seconds from the node's return to the finished file
    drift: float = 0.0  # colour drift per image-to-video link: its last frame is R x (1 + drift), B x (1 - drift)

    @property
    def temp_dir(self) -> Path:
        return Path(self.output_dir).parent / "temp"

    @property
    def input_dir(self) -> Path:
        return Path(self.output_dir).parent / "input"


class Interrupted(Exception):
    pass


class Restarted(Exception):
    pass


def now_ms() -> int:
    return int(time.time() * 1000)


class Engine:
    def __init__(self, config: SimConfig, faults: Faults | None = None, emit=None,
                 profile: Profile | str | None = None):
        self.config = config
        self.profile = get_profile(profile)
        self.faults = faults or Faults()
        self.emit = emit or (lambda type_, data, sid: None)
        self.on_restart = lambda: None
        self.on_down = lambda seconds: None  # the server stops listening for `seconds`
        self.node_replacements: dict[str, dict] = {}  # 0.38: old class -> {new_node_id, input_mapping}
        self._timers: list[threading.Timer] = []
        self.set_models(config.models)
        self._lock = threading.RLock()
        self._encodes = BackgroundEncodes(self._lock)  # node-pack encodes still running
        self._wake = threading.Condition(self._lock)
        self._interrupt = threading.Event()
        self._stopping = False
        self._gen = 0
        self._started = 0  # prompts started since the simulator began (fault numbering)
        self._log: list[dict] = []
        self._reset_state()
        self._worker = threading.Thread(target=self._work, name="wanclip-sim-worker", daemon=True)

    def _reset_state(self) -> None:
        self._queue: list[tuple] = []
        self._running: tuple | None = None
        self._run: Run | None = None
        self._history: dict[str, dict] = {}
        self._number = 0
        self._cache: dict[str, tuple] = {}  # signature -> (outputs, ui)
        self._resident: set[tuple[str, str]] = set()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> Engine:
        self._worker.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._gen += 1
            self._interrupt.set()
            self._wake.notify_all()
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        self._encodes.stopped.set()
        if self._worker.is_alive():
            self._worker.join(timeout=10)
        self._encodes.join(timeout=10)

    def restart(self, down_seconds: float | None = None) -> None:
        """What a ComfyUI restart loses: queue, history, the running prompt, caches, loaded models.

        down_seconds: the process is gone that long first (the server stops listening)."""
        if down_seconds is not None:
            self.on_down(down_seconds)
        with self._lock:
            self._gen += 1
            if self._run is not None:
                self._log_finish(self._run, "lost")
            self._reset_state()
            self._interrupt.set()
            self._wake.notify_all()
        if down_seconds is None:
            self.on_restart()

    def set_models(self, models: str | Path | dict | None) -> None:
        """The models folders the server lists and validates against (dict, file, dir or None)."""
        folder_keys = FOLDER_KEYS if self.profile.key == "0.3.64" else FOLDER_KEYS_09
        packs = tuple(self.config.nodes)
        core_post = self.profile.key in post_schemas.SOURCE_PROFILES  # core FrameInterpolate and SeedVR2
        self.catalog = Catalog(dict(models) if isinstance(models, dict) else load_models(models, core_post),
                               self.profile.object_info, folder_keys,
                               {**post_schemas.object_info(self.profile.key, packs), **wanclip_nodes.object_info(packs)},
                               self.folders)

    def folders(self) -> dict[str, Path]:
        """ComfyUI's input/, output/ and temp/ folders of this server, as the config has them now."""
        config = self.config
        return {"input": config.input_dir, "output": Path(config.output_dir), "temp": config.temp_dir}

    def register_node_replacement(self, old_class: str, new_class: str, input_mapping: dict | None = None) -> None:
        """0.38: a renamed node the server rewrites before validation (GET /node_replacements)."""
        self.node_replacements[old_class] = {"new_node_id": new_class, "old_node_id": old_class,
                                             "input_mapping": dict(input_mapping or {})}

    def reset(self, output_dir: Path | None = None) -> None:
        """A fresh simulator for the next test: restart, no faults, empty log, configured models."""
        self.restart()
        self.set_models(self.config.models)
        with self._lock:
            self.faults.clear()
            self.node_replacements.clear()
            self._log.clear()
            self._started = 0
            if output_dir is not None:
                self.config.output_dir = Path(output_dir)

    # ---- HTTP-facing API -------------------------------------------------------------------
    def submit(self, body) -> tuple[int, dict]:
        """POST /prompt: (http status, json body), with the real shapes of this profile."""
        if not isinstance(body, dict):
            body = {}  # ComfyUI checks `"prompt" in body`; any non-object lands on no_prompt
        with self._lock:
            if "number" in body:
                number = float(body["number"])
            else:
                number = -self._number if body.get("front") else self._number
                self._number += 1
        try:
            prompt = submission.prompt_of(body)
            prompt_id = submission.prompt_id_of(self.profile, body)
        except submission.Refused as refused:
            return refused.status, refused.body
        if self.profile.node_replacements:
            submission.apply_replacements(prompt, self.node_replacements, self.catalog.has_class)
        ok, error, outputs, node_errors = validate_prompt(
            self.catalog, prompt, body.get("partial_execution_targets"), missing_node_type=self.profile.canonical_ids)
        if not ok:
            return 400, {"error": error, "node_errors": node_errors}
        extra = submission.extra_data_of(self.profile, body)
        with self._lock:
            if self.profile.unique_ids and self._known(prompt_id):
                return 409, {"error": "prompt_id already exists"}
            heapq.heappush(self._queue, (number, prompt_id, prompt, extra, outputs))
            self._queue_updated()
            self._wake.notify()
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": node_errors}

    def _known(self, prompt_id: str) -> bool:
        """PromptQueue.put's refusal (0.38): the id is in history, pending or running."""
        return (prompt_id in self._history or any(i[1] == prompt_id for i in self._queue)
                or (self._running is not None and self._running[1] == prompt_id))

    def queue_remaining(self) -> int:
        with self._lock:
            return len(self._queue) + (1 if self._running else 0)

    def queue(self) -> dict:
        with self._lock:
            running = [list(self._running)] if self._running else []
            return copy.deepcopy({"queue_running": running, "queue_pending": [list(i) for i in self._queue]})

    def delete_pending(self, prompt_ids) -> None:
        for pid in prompt_ids:
            with self._lock:
                for i, item in enumerate(self._queue):
                    if item[1] == pid:
                        if len(self._queue) == 1:
                            self.clear_pending()  # the real server announces the wipe too
                        else:
                            self._queue.pop(i)
                            heapq.heapify(self._queue)
                        self._queue_updated()
                        break

    def clear_pending(self) -> None:
        with self._lock:
            self._queue = []
            self._queue_updated()

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """/interrupt: the running prompt (any, or the one named) stops at its next check.

        Returns whether it was running (PromptQueue.interrupt_if_running, for the jobs cancel)."""
        with self._lock:
            if self._running is None:
                return False
            if prompt_id is not None and self._running[1] != prompt_id:
                return False
            delay = self.faults.interrupt_delay
            if not delay:
                self._interrupt.set()
                return True
            run = self._run
            timer = threading.Timer(delay, self._late_interrupt, args=(run,))
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
            timer.start()
            return True

    def _late_interrupt(self, run) -> None:
        with self._lock:
            if self._run is run and run is not None:  # never a prompt that started since
                self._interrupt.set()

    def dequeue(self, prompt_id: str) -> bool:
        """Removes one pending copy of prompt_id; False when none was pending."""
        with self._lock:
            if not any(item[1] == prompt_id for item in self._queue):
                return False
        self.delete_pending([prompt_id])
        return True

    # ---- /api/jobs ---------------------------------------------------------------------------
    def job(self, prompt_id: str) -> dict | None:
        with self._lock:
            running = [self._running] if self._running else []
            return copy.deepcopy(jobs.get_job(self.profile, prompt_id, running, list(self._queue), self._history))

    def jobs(self, **query) -> tuple[list[dict], int]:
        with self._lock:
            running = [self._running] if self._running else []
            found = jobs.get_all_jobs(self.profile, running, sorted(self._queue), self._history, **query)
            return copy.deepcopy(found)

    def cancel(self, prompt_id: str) -> str:
        """POST /api/jobs/{id}/cancel (0.38): running -> interrupted, pending -> dequeued."""
        with self._lock:
            running = [self._running] if self._running else []
            kind = jobs.classify_for_cancel(prompt_id, running, list(self._queue), self._history)
        if kind == jobs.CANCEL_RUNNING:
            return kind if self.interrupt(prompt_id) else jobs.CANCEL_UNKNOWN
        if kind == jobs.CANCEL_PENDING:
            if self.dequeue(prompt_id):
                return kind
            return jobs.CANCEL_RUNNING if self.interrupt(prompt_id) else jobs.CANCEL_UNKNOWN
        return kind

    def history(self, max_items: int | None = None, offset: int = -1) -> dict:
        with self._lock:
            keys = list(self._history)
            if offset < 0 and max_items is not None:
                offset = len(keys) - max_items
            keys = keys[max(offset, 0):]
            if max_items is not None:
                keys = keys[:max_items]
            return copy.deepcopy({k: self._history[k] for k in keys})

    def history_item(self, prompt_id: str) -> dict:
        with self._lock:
            if prompt_id in self._history:
                return {prompt_id: copy.deepcopy(self._history[prompt_id])}
            return {}

    def delete_history(self, prompt_ids=(), clear: bool = False) -> None:
        with self._lock:
            if clear:
                self._history.clear()
            for pid in prompt_ids:
                self._history.pop(pid, None)

    def free(self, unload_models: bool = False, free_memory: bool = False) -> None:
        with self._lock:
            if unload_models or free_memory:
                self._resident.clear()
            if free_memory:
                self._cache.clear()

    def log(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._log)

    def current(self) -> tuple[str, str | None] | None:
        """(prompt_id, node id) of the running prompt, or None when idle."""
        with self._lock:
            return (self._run.prompt_id, self._run.node) if self._run is not None else None

    def running_node(self, client_id: str) -> str | None:
        """The node a reconnecting client's prompt is on (sent to it on connect)."""
        with self._lock:
            run = self._run
            if run is not None and run.client_id == client_id:
                return run.node
            return None

    def _queue_updated(self) -> None:
        self.emit("status", {"status": {"exec_info": {"queue_remaining": self.queue_remaining()}}}, None)

    # ---- worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                item = heapq.heappop(self._queue)
                self._running = item
                self._started += 1
                run = Run(item, self._gen, self._started)
                self._run = run
                self._interrupt.clear()
                self._log.append({"prompt_id": item[1], "client_id": item[3].get("client_id"),
                                  "number": item[0], "started_ms": now_ms(), "finished_ms": None,
                                  "status": "running"})
                self._queue_updated()
            try:
                self._execute(run)
            except Restarted:
                continue

    def _send(self, run: Run, type_: str, data: dict, *, to_client_only: bool = True) -> None:
        with self._lock:
            if run.gen != self._gen:
                raise Restarted
            if to_client_only and run.client_id is None:
                return
            self.emit(type_, data, run.client_id)

    def _lifecycle(self, run: Run, type_: str, data: dict, *, broadcast: bool = False) -> None:
        """Messages that also go into history's status.messages."""
        data = dict(data, timestamp=now_ms())
        run.messages.append([type_, data])
        self._send(run, type_, data, to_client_only=not broadcast)

    def _execute(self, run: Run) -> None:
        prompt, pid = run.prompt, run.prompt_id
        self._lifecycle(run, "execution_start", {"prompt_id": pid})
        sigs = signatures(prompt, self.catalog.has_unique_id, self._is_changed)
        with self._lock:
            if self.profile.cache == CACHE_CLASSIC:  # RAM_PRESSURE keeps earlier prompts' outputs too
                self._cache = {k: v for k, v in self._cache.items() if k in set(sigs.values())}
            cached = [n for n in prompt if sigs[n] in self._cache]
            for n in cached:
                run.outputs[n], ui = self._cache[sigs[n]]
                if ui is not None:
                    run.ui[n] = ui
        self._lifecycle(run, "execution_cached", {"nodes": cached, "prompt_id": pid})
        order = ExecutionList(prompt, lambda n: n in cached, lambda n: self.catalog.is_output(prompt[n]["class_type"]))
        for out in run.item[4]:
            order.add_node(out)
        try:
            while (node_id := order.next_node()) is not None:
                self._execute_node(run, node_id, node_id in cached, sigs[node_id])
                order.complete(node_id)
        except Interrupted:
            return self._finish(run, "interrupted")
        except NodeError as ex:
            return self._fail(run, ex)
        self._lifecycle(run, "execution_success", {"prompt_id": pid})
        self._finish(run, "success")

    def _execute_node(self, run: Run, node_id: str, cached: bool, sig: str) -> None:
        node = run.prompt[node_id]
        if cached:
            self._send(run, "executed", {"node": node_id, "display_node": node_id,
                                         "output": run.ui.get(node_id), "prompt_id": run.prompt_id})
            self._progress(run, node_id, "finished")
            return
        run.node = node_id
        run.started[node_id] = time.perf_counter()
        self._progress(run, node_id, "running", 0.0, 1.0)
        self._send(run, "executing", {"node": node_id, "display_node": node_id, "prompt_id": run.prompt_id})
        self._check_interrupt(run)
        self._node_faults(run, node_id, node["class_type"])
        inputs = {k: (run.outputs[v[0]][v[1]] if is_link(v) else v) for k, v in node["inputs"].items()}
        run.current_inputs = inputs
        try:
            outputs, ui = nodes.run_node(node["class_type"], inputs, self._ctx(run, node_id))
        except (Interrupted, Restarted, NodeError):
            raise
        except Exception as ex:  # noqa: BLE001 - a node bug must fail the prompt, not kill the worker
            raise NodeError(type(ex).__name__, str(ex)) from ex
        run.outputs[node_id] = outputs
        run.executed.append(node_id)
        if ui is not None:
            run.ui[node_id] = ui
            self._send(run, "executed", {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": run.prompt_id})
        with self._lock:
            if run.gen == self._gen:
                self._cache[sig] = (outputs, ui)
        self._progress(run, node_id, "finished")

    def _is_changed(self, node: dict):
        """IS_CHANGED, part of the cache key: LoadImage's is the sha256 of its file (nodes.py), so
        an upload that overwrites the file makes it load again; the video loaders' likewise (the sim
        hashes the file too). None for every other class."""
        name = {"LoadImage": "image", "LoadVideo": "file", "VHS_LoadVideo": "video"}.get(node.get("class_type"))
        if name is None:
            return None
        try:
            return hashlib.sha256(self.catalog.annotated_path(node["inputs"][name]).read_bytes()).hexdigest()
        except (OSError, KeyError, TypeError, AttributeError):
            return None

    def _ctx(self, run: Run, node_id: str) -> Ctx:
        bar = {"last": -1, "time": 0.0}  # one ProgressBar per node call, as in comfy/utils.py

        def step(value: int, maximum: int) -> None:
            if progress_due(self.profile, bar, value, maximum):
                self._progress(run, node_id, "running", value, maximum)
                self._send(run, "progress", {"value": value, "max": maximum, "prompt_id": run.prompt_id,
                                             "node": node_id}, to_client_only=False)
            if run.ordinal in self.faults.down:
                seconds = self.faults.down.pop(run.ordinal)
                self.restart(down_seconds=seconds)
                raise Restarted
            if run.ordinal in self.faults.restart_at and run.prompt[node_id]["class_type"] == "KSamplerAdvanced":
                self.faults.restart_at.discard(run.ordinal)
                self.restart()
                raise Restarted

        def activity(name: str | None) -> None:
            if self.profile.node_activity:
                run.set_activity(node_id, name)
                self._progress(run, node_id, "running")

        return Ctx(node_id, run.prompt, Path(self.config.output_dir), self.config.temp_dir,
                         lambda s: self._sleep(run, s), step, self.config.step_seconds, self._load_seconds,
                         activity, run.prompt_id, lambda work: self._start_background(run, work),
                         self.config.video_delay, self.catalog.annotated_path, self.config.drift)

    def _start_background(self, run: Run, work) -> None:
        """A node pack's background encode; its ``wanclip.video`` payload goes to the prompt's client."""
        fault = self.faults.encode_fail.get(run.ordinal, False)
        fail_message = None if fault is False else (fault or "Simulated encoder failure requested by --faults")
        gen = run.gen
        self._encodes.start(work, fail_message, lambda: gen == self._gen,
                            lambda payload: self.emit(wanclip_nodes.EVENT, payload, run.client_id))

    def _load_seconds(self, folder: str, name: str) -> float:
        with self._lock:
            if (folder, name) in self._resident:
                return 0.0
            self._resident.add((folder, name))
        weight = nodes.LOAD_WEIGHT.get(folder) or post_nodes.LOAD_WEIGHT.get(folder, 1.0)
        return self.config.load_seconds * weight / nodes.FULL_SET_WEIGHT

    def _progress(self, run: Run, node_id: str, state: str, value=None, maximum=None) -> None:
        payload = run.progress_state(self.profile, node_id, state, value, maximum)
        self._send(run, "progress_state", payload, to_client_only=False)

    def _sleep(self, run: Run, seconds: float) -> None:
        if seconds > 0:
            self._interrupt.wait(seconds)
        self._check_interrupt(run)

    def _check_interrupt(self, run: Run) -> None:
        if run.gen != self._gen:
            raise Restarted
        if self._interrupt.is_set():
            raise Interrupted

    def _node_faults(self, run: Run, node_id: str, class_type: str) -> None:
        def hits(fault) -> bool:
            target = fault.node or "KSamplerAdvanced"
            return target in (node_id, class_type)

        stall = self.faults.stall.get(run.ordinal)
        if stall is not None and hits(stall):
            while self.faults.stall.get(run.ordinal) is stall:  # until /interrupt, a restart, or released
                self._sleep(run, 0.02)
        fail = self.faults.fail.get(run.ordinal)
        if fail is not None and hits(fail):
            raise NodeError("RuntimeError", fail.message or f"Simulated failure of node {node_id} ({class_type}) requested by --faults")

    def _fail(self, run: Run, ex: NodeError) -> None:
        self._lifecycle(run, "execution_error", run.error(ex.exception_type, str(ex)))
        self._finish(run, "error")

    def _finish(self, run: Run, outcome: str) -> None:
        if outcome == "interrupted":
            self._lifecycle(run, "execution_interrupted", run.interrupted(), broadcast=True)
        with self._lock:
            if run.gen != self._gen:
                raise Restarted
            # History is written after execution_success and before the final `executing null`.
            self._history[run.prompt_id] = run.history_entry(outcome == "success")
            while len(self._history) > MAXIMUM_HISTORY_SIZE:
                self._history.pop(next(iter(self._history)))
            self._running = None
            self._run = None
            self._log_finish(run, outcome)
            self._queue_updated()
        self._send(run, "executing", {"node": None, "prompt_id": run.prompt_id})

    def _log_finish(self, run: Run, status: str) -> None:
        for entry in reversed(self._log):
            if entry["prompt_id"] == run.prompt_id and entry["finished_ms"] is None:
                entry["finished_ms"], entry["status"] = now_ms(), status
                return
