"""Scoring samples for likeness beside the training loop, in processes of their own.

dlib holds the GIL while it looks for faces (0.1-0.3 s a sample, with a face or without): in the training
process, even in a thread, it would stop the loop from feeding the GPU. So each sample of a step goes to its own
worker process (`python -m trainer.training.scoring`, which owes nothing to the parent's main module, as a Ray
worker's is), scored at the same time as the others and as training goes on: the GPU never waits, and a step's
samples are scored in the time of the slowest one. bench/likeness.py measures it.

The protocol is lines: the identity first (JSON), then one picture's path per line in, one score per line out
("none" for no face, or "error ..."), in order.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from trainer.training.likeness import NO_FACE, Score, as_text, likeness

log = logging.getLogger(__name__)

WORKERS = 2  # a step's samples: the run's two sample prompts


class ScoringFailed(RuntimeError):
    pass


class _Worker:
    """One scoring process and the scores it owes, in order."""

    def __init__(self, identity: np.ndarray):
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.owed: collections.deque[Future[Score]] = collections.deque()
        self.lock = threading.Lock()
        self._send(json.dumps([float(x) for x in np.asarray(identity).ravel()]))
        threading.Thread(target=self._read, name="likeness-scores", daemon=True).start()

    def _send(self, line: str) -> None:
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]  # a PIPE
        stdin.write(line + "\n")
        stdin.flush()

    def submit(self, path: Path) -> Future[Score]:
        future: Future[Score] = Future()
        with self.lock:
            try:
                self._send(str(path))
            except (OSError, ValueError) as exc:  # the process ended (a closed pipe)
                future.set_exception(ScoringFailed(f"the scoring process ended ({exc})"))
                return future
            self.owed.append(future)
        return future

    def _read(self) -> None:
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]  # a PIPE
        for line in stdout:
            with self.lock:
                future = self.owed.popleft()
            text = line.strip()
            if text.startswith("error"):
                future.set_exception(ScoringFailed(text))
            else:
                future.set_result(None if text == NO_FACE else float(text))
        with self.lock:
            while self.owed:
                self.owed.popleft().set_exception(ScoringFailed("the scoring process ended"))

    def close(self) -> None:
        try:
            if self.process.stdin:
                self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


class SampleScorer:
    """Scores pictures against one identity in WORKERS processes, round robin."""

    def __init__(self, identity: np.ndarray, scratch_in: Path, workers: int = WORKERS):
        self._scratch = Path(tempfile.mkdtemp(prefix="doppel-likeness-", dir=scratch_in))
        self._workers = [_Worker(identity) for _ in range(workers)]
        self._numbers = itertools.count()

    @classmethod
    def start(cls, identity: np.ndarray | None, scratch_in: Path) -> SampleScorer | None:
        """A scorer for a run, its pictures waiting in a folder made in `scratch_in`, or None (with why, logged)
        when there is no face to compare with or no process can be started: the run goes on unscored."""
        if identity is None:
            return None
        try:
            return cls(identity, scratch_in)
        except OSError as exc:
            log.warning("samples will not be scored for likeness: no scoring process could start (%s)", exc)
            return None

    def submit(self, image: Image.Image) -> Future[Score]:
        number = next(self._numbers)
        path = self._scratch / f"{number}.png"
        image.save(path, compress_level=1)
        return self._workers[number % len(self._workers)].submit(path)

    @staticmethod
    def result(future: Future[Score]) -> tuple[bool, Score]:
        """(scored, score): a score that failed is logged and left out, never the run's end."""
        try:
            return True, future.result()
        except ScoringFailed as exc:
            log.warning("a sample could not be scored for likeness: %s", exc)
            return False, None

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


def serve() -> None:
    """The worker process: the identity, then a score for each picture named."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a library prints goes to stderr: stdout carries the answers alone
    from faces.models import models

    identity = np.asarray(json.loads(sys.stdin.readline()), dtype=np.float32)
    models()  # dlib's models load now, not in the first sample's time
    for line in sys.stdin:
        try:
            with Image.open(line.strip()) as image:
                answer = as_text(likeness(image.convert("RGB"), identity))
        except Exception as exc:  # one bad picture is its own failure, not the worker's end
            answer = f"error {type(exc).__name__}: {str(exc)[:200]}".replace("\n", " ")
        answers.write(answer + "\n")


if __name__ == "__main__":
    serve()
