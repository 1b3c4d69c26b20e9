"""One worker thread and its queue: the web UI's jobs run one at a time, so two uploads never load two models.

    queue = JobQueue()
    job = queue.submit("review", "paper.pdf", work)   # work(job) -> result dict; job.step("...") reports progress
    queue.get(job.id).status                          # queued | running | done | failed

Jobs live in memory, keyed by an unguessable id that the page's URL carries, so a reload finds the job again.
A job's `cleanup` callbacks (removing the upload's temp folder) run after it finishes, whatever happened; when
the process exits while a job still runs (the worker is a daemon thread, stopped mid-job), they run at exit.
"""

from __future__ import annotations

import atexit
import logging
import queue as _queue
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import CycleResearcherError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass
class Job:
    """One unit of work and everything a page needs to show it."""

    id: str
    kind: str
    label: str  # what the user gave (a file name, "pasted text")
    options: dict[str, Any] = field(default_factory=dict)
    status: str = QUEUED
    steps: list[tuple[float, str]] = field(default_factory=list)  # (seconds since created, message)
    error: str = ""  # one line, for the page
    result: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    finished: Optional[float] = None
    cleanup: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def step(self, message: str) -> None:
        """Record a progress message (shown live on the job page)."""
        self.steps.append((round(time.time() - self.created, 1), message))
        log.info("job %s: %s", self.id, message)

    @property
    def finished_ok(self) -> bool:
        return self.status == DONE

    @property
    def over(self) -> bool:
        return self.status in (DONE, FAILED)

    @property
    def elapsed(self) -> float:
        end = self.finished or time.time()
        return round(end - (self.started or end), 1)

    def snapshot(self, position: int = 0) -> dict[str, Any]:
        """What the progress stream sends: status, steps so far, the error, time spent."""
        return {"id": self.id, "status": self.status, "error": self.error, "elapsed": self.elapsed,
                "position": position, "steps": [{"t": t, "message": m} for t, m in self.steps]}


def one_line(exc: BaseException) -> str:
    """An exception as the one line a page shows: our own errors by message, anything else with its type."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    hint = getattr(exc, "hint", "")
    if isinstance(exc, (CycleResearcherError, ValueError, FileNotFoundError, PermissionError)):
        return f"{text} ({hint})" if hint else text
    return f"{type(exc).__name__}: {text}"


class JobQueue:
    """A FIFO of jobs served by one daemon thread. `max_jobs` finished jobs are kept (oldest dropped first)."""

    def __init__(self, max_jobs: int = 200) -> None:
        self.max_jobs = max_jobs
        self._jobs: dict[str, Job] = {}
        self._work: dict[str, Callable[[Job], dict]] = {}
        self._queue: "_queue.Queue[Optional[str]]" = _queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="cycleresearcher-web-worker", daemon=True)
        self._thread.start()
        atexit.register(_cleanup_running, weakref.ref(self))  # weak: a dropped queue is not kept alive

    def submit(self, kind: str, label: str, work: Callable[[Job], dict], options: Optional[dict] = None,
               cleanup: Optional[list[Callable[[], None]]] = None) -> Job:
        job = Job(id=secrets.token_hex(8), kind=kind, label=label, options=dict(options or {}),
                  cleanup=list(cleanup or []))
        job.step("queued")
        with self._lock:
            self._jobs[job.id] = job
            self._work[job.id] = work
            self._forget_old()
        self._queue.put(job.id)
        return job

    def get(self, job_id: str) -> Optional[Job]:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job_id: str) -> int:
        """How many jobs run or wait before this one (0 when it is running or over)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status != QUEUED:
                return 0
            return sum(1 for j in self._jobs.values() if j.status in (QUEUED, RUNNING) and j.created < job.created)

    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Block until the job is over (tests and scripts); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.over:
                return job
            time.sleep(0.02)
        raise TimeoutError(f"job {job_id} still running after {timeout} s")

    def close(self) -> None:
        """Stop the worker after the running job. Jobs still queued never run: each is marked failed and its
        cleanup (its upload's temp folder) runs now, so a server stop leaves no upload behind."""
        with self._lock:
            pending = [job for job in self._jobs.values() if job.status == QUEUED]
            for job in pending:
                self._work.pop(job.id, None)  # the worker skips a job without work
        for job in pending:
            _run_cleanup(job)
            job.error = "the server stopped before this job ran"
            job.step(f"failed: {job.error}")
            job.status = FAILED
        self._queue.put(None)

    def _forget_old(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.over), key=lambda j: j.created)
        for job in finished[: max(0, len(self._jobs) - self.max_jobs)]:
            del self._jobs[job.id]

    def _serve(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                job, work = self._jobs.get(job_id), self._work.pop(job_id, None)
            if job is None or work is None:
                continue
            self._run(job, work)

    @staticmethod
    def _run(job: Job, work: Callable[[Job], dict]) -> None:
        job.started = time.time()
        job.status = RUNNING
        job.step("started")
        result, error = {}, ""
        try:
            result = work(job) or {}
        except Exception as exc:  # noqa: BLE001 - any failure becomes the job's one-line error; the worker lives on
            error = one_line(exc)
            if not isinstance(exc, (CycleResearcherError, ValueError, FileNotFoundError)):
                log.exception("job %s failed", job.id)
        finally:
            _run_cleanup(job)  # before the status flips: whoever sees "done" also sees the temp folder gone
        job.finished = time.time()
        if error:
            job.error = error
            job.step(f"failed: {error}")
            job.status = FAILED
        else:
            job.result = result
            job.step("done")
            job.status = DONE


def _cleanup_running(ref: "weakref.ref[JobQueue]") -> None:
    """At interpreter exit: the cleanup of the job the daemon worker was running (nothing else will run it)."""
    queue = ref()
    if queue is None:
        return
    for job in queue.jobs():
        if job.status == RUNNING:
            _run_cleanup(job)


def _run_cleanup(job: Job) -> None:
    undos, job.cleanup = job.cleanup, []  # taken first: the worker and the exit hook never both run one
    for undo in undos:
        try:
            undo()
        except OSError as exc:
            log.warning("job %s: cleanup failed: %s", job.id, exc)
