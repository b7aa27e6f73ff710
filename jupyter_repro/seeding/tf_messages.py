"""The one TensorFlow log line op determinism makes TensorFlow write for nothing, removed.

With op determinism on, tf.data's ``make_deterministic`` rewrite
(``tensorflow/core/grappler/optimizers/data/make_deterministic.cc``,
``ConvertMapOrInterleave``) turns a ``ParallelMapDatasetV2`` into a ``MapDataset`` and
erases the attributes ``MapDataset`` does not have (``deterministic``, ``sloppy``), but
not ``use_unbounded_threadpool``, which TensorFlow's own ``Dataset.map`` always sets on a
parallel map. Keras's array adapter maps batches with ``num_parallel_calls=AUTOTUNE``, so
fits and predictions log, at ERROR level::

    E0000 ... node_def_util.cc:682] NodeDef mentions attribute use_unbounded_threadpool which
    is not in the op definition: Op<name=MapDataset; ...> ... Unknown attributes will be ignored.

The attribute is ignored and the map runs sequentially as the rewrite intends; the cause
is in TensorFlow's C++, and the line is written by C++ to file descriptor 2, below
Python's logging. So, while op determinism is on (``frameworks.seed_tensorflow``),
descriptor 2 goes through a pipe whose reader forwards every byte except exactly that
line. POSIX only (elsewhere nothing changes). ``stop()`` puts descriptor 2 back as it was
(also at interpreter exit, so a script's last traceback is forwarded); a child process
started meanwhile keeps the pipe, and the reader forwards its writes until it lets go.
What it costs: bytes written in the instant before the process is killed (a crash's own
message, ``os._exit``) may not reach the terminal, as with ipykernel's own capture of
descriptor 2; C code writing over 64 KiB to descriptor 2 while holding the GIL would
block on the pipe (not seen from TensorFlow, which logs with the GIL released).
"""
from __future__ import annotations

import atexit
import os
import re
import select
import threading
from typing import Optional

#: exactly the line described above (glog/absl prefix, then TensorFlow's own words)
LINE = re.compile(rb"^E\d{4} [^\]\n]*node_def_util\.cc:\d+\] NodeDef mentions attribute use_unbounded_threadpool "
                  rb"which is not in the op definition: Op<name=MapDataset;[^\n]*$")


def keep(line: bytes) -> bool:
    """False only for the line this module removes."""
    return LINE.match(line.rstrip(b"\r")) is None


class DescriptorFilter:
    """Descriptor ``fd`` through a pipe; lines ``keep`` refuses are dropped."""

    def __init__(self, fd: int = 2):
        self.fd = fd
        self._saved: Optional[int] = None
        self._read: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._pipe: Optional[tuple] = None  # (inode, device) of the pipe put on ``fd``
        self._at_exit = False
        self.removed = 0  # lines dropped so far (TensorFlow logs this one once per process)

    @property
    def active(self) -> bool:
        """True while descriptor ``fd`` is still this filter's pipe (someone else, pytest's
        capture for one, may have put another file there since)."""
        return self._thread is not None and self._ours()

    def _ours(self) -> bool:
        try:
            return (os.fstat(self.fd).st_ino, os.fstat(self.fd).st_dev) == self._pipe
        except OSError:
            return False

    def start(self) -> None:
        if os.name != "posix" or self.active:
            return
        self.stop()  # a filter whose descriptor was taken over meanwhile: let go of it
        try:
            saved = os.dup(self.fd)
        except OSError:  # descriptor 2 closed: nothing is shown, nothing to filter
            return
        read, write = os.pipe()
        os.dup2(write, self.fd)
        os.close(write)
        self._saved, self._read = saved, read
        self._pipe = (os.fstat(self.fd).st_ino, os.fstat(self.fd).st_dev)
        self._thread = threading.Thread(target=self._pump, args=(read, saved), name="jupyter-repro-stderr",
                                        daemon=True)
        self._thread.start()
        if not self._at_exit:
            atexit.register(self.stop)
            self._at_exit = True

    def stop(self) -> None:
        """Descriptor ``fd`` as it was, where it is still ours; another file put there since
        is left alone. The reader forwards what the pipe holds and ends when the last write
        end closes: at once, or when a child process that inherited it lets go (its writes
        are forwarded meanwhile, never cut off)."""
        if self._thread is None:
            return
        if self._ours():
            os.dup2(self._saved, self.fd)  # our write end closes: the reader sees its end
        self._thread.join(timeout=0.5)
        self._saved = self._read = self._thread = self._pipe = None

    def _pump(self, read: int, saved: int) -> None:
        try:
            self._forward_lines(read, saved)
        finally:
            os.close(read)
            os.close(saved)

    def _forward_lines(self, read: int, saved: int) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([read], [], [], 0.05)
            if not ready:  # a line without its end yet (a prompt, a progress bar): forwarded as it is
                if pending:
                    self._forward(saved, pending)
                    pending = b""
                continue
            try:
                chunk = os.read(read, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            kept = [line for line in lines if keep(line)]
            self.removed += len(lines) - len(kept)
            self._forward(saved, b"".join(line + b"\n" for line in kept))
        if pending and keep(pending):
            self._forward(saved, pending)

    @staticmethod
    def _forward(saved: int, data: bytes) -> None:
        while data:
            try:
                written = os.write(saved, data)
            except OSError:  # the terminal went away: nothing can be shown anyway
                return
            data = data[written:]


_stderr = DescriptorFilter(2)


def quiet() -> None:
    """Remove the line from descriptor 2 from now on (op determinism is on)."""
    _stderr.start()


def restore() -> None:
    """Descriptor 2 as it was (op determinism off, or the extension unloaded)."""
    _stderr.stop()


def removed() -> int:
    """How many such lines were removed in this process."""
    return _stderr.removed
