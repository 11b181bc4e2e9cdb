"""How a candidate's output bytes reach the judge: one file per output slot in the worker's scratch.

The worker keeps one file per (output position, size) and rewrites it for every output it hands
over; the judge maps the same file. On CUDA both sides page-lock their mapping once
(cudaHostRegister), so each transfer is a DMA copy: a 1 GiB softmax output took ~0.8 s each way
through fresh, pageable files on the H200, and there were about a dozen per evaluation.

What the judge compares is its own device copy, taken when the reply arrives: the candidate's
process can rewrite the file at any time, but only before the judge copies it, and then it only
chooses its own answer. A file the candidate truncates cannot fault the judge: pages it has
registered stay pinned (the DMA engine reads them, the CPU never does), and a file that is not a
regular file of the right size inside the worker's scratch is refused before it is mapped. The
checks are made on an opened descriptor (no symlink followed, a FIFO not waited on), and the map
is made through that descriptor, so swapping the name afterwards changes nothing.
"""
from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

import torch


MAX_PINNED = 16  # mapped files the judge keeps page-locked per worker (an honest output tree has a few)


def _register(t: torch.Tensor) -> bool:
    """Page-lock a mapped tensor's memory (CUDA only); False where it cannot be."""
    if not torch.cuda.is_available() or t.numel() == 0:
        return False
    err = torch.cuda.cudart().cudaHostRegister(t.data_ptr(), t.numel() * t.element_size(), 0)
    return int(getattr(err, "value", err)) == 0  # a cudaError enum


def _unregister(t: torch.Tensor) -> None:
    torch.cuda.cudart().cudaHostUnregister(t.data_ptr())


class Slots:
    """The worker's side: a mapped (and on CUDA page-locked) file per output position and size."""

    def __init__(self, scratch: Path, pin: bool):
        self.scratch, self.pin = scratch, pin
        self.maps: dict[tuple[int, int], tuple[Path, torch.Tensor]] = {}

    def put(self, position: int, flat_bytes: torch.Tensor) -> str:
        nbytes = flat_bytes.numel()
        key = (position, nbytes)
        if key not in self.maps:
            path = self.scratch / f"out-{position}-{nbytes}.bin"
            with open(path, "wb") as f:
                f.truncate(nbytes)
            mapped = torch.from_file(str(path), shared=True, size=nbytes, dtype=torch.uint8) if nbytes else \
                torch.empty(0, dtype=torch.uint8)
            if self.pin:
                _register(mapped)
            self.maps[key] = (path, mapped)
        path, mapped = self.maps[key]
        if nbytes:
            mapped.copy_(flat_bytes)
        return str(path)


class Reader:
    """The judge's side for one worker: maps its slot files once and copies them onto the device."""

    def __init__(self, scratch: Path):
        self.scratch = scratch.resolve()
        self.maps: dict[str, tuple[tuple[int, int], torch.Tensor]] = {}  # path -> ((inode, size), pinned map)

    def _open(self, meta: dict[str, Any], nbytes: int) -> tuple[int, os.stat_result]:
        """An fd of the output file, checked on the fd itself: the candidate can swap the name for a
        symlink or a FIFO between a check and an open (a FIFO would block the judge forever)."""
        path = Path(meta["path"])
        if path.parent.resolve() != self.scratch:
            raise ValueError(f"output file {path} is not in the worker's scratch directory")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise ValueError(f"output file {path.name} cannot be opened as a plain file: {e.strerror}") from None
        st = os.fstat(fd)
        why = ("is not a regular file" if not stat.S_ISREG(st.st_mode) else
               f"holds {st.st_size} bytes, expected {nbytes}" if st.st_size != nbytes else "")
        if why:
            os.close(fd)
            raise ValueError(f"output file {path.name} {why}")
        return fd, st

    def load(self, meta: dict[str, Any], device: torch.device | str) -> torch.Tensor:
        dtype = getattr(torch, meta["dtype"].split(".", 1)[1])
        numel = math.prod(meta["shape"])
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        if nbytes == 0:
            raw = torch.empty(0, dtype=torch.uint8)
        else:
            fd, st = self._open(meta, nbytes)
            try:
                raw = self._to_device(meta["path"], fd, st, nbytes, device) if torch.device(device).type == "cuda" \
                    else self._read(fd, nbytes)
            finally:
                os.close(fd)
        out = raw.to(torch.bool) if dtype == torch.bool else raw.view(dtype)
        return out.reshape(meta["shape"]).to(device)

    def _to_device(self, path: str, fd: int, st: os.stat_result, nbytes: int, device: torch.device | str) -> torch.Tensor:
        ident = (st.st_ino, nbytes)
        held = self.maps.get(path)
        if held is None or held[0] != ident:  # new, or replaced by the candidate: one pinned map per path
            if held is not None:
                _unregister(self.maps.pop(path)[1])
            # mapped through the checked fd, not the name (which the candidate can change meanwhile)
            try:
                mapped = torch.from_file(f"/proc/self/fd/{fd}", shared=True, size=nbytes, dtype=torch.uint8)
            except RuntimeError as e:  # e.g. a candidate that made its file read-only
                raise ValueError(f"output file {Path(path).name} cannot be mapped: {str(e)[:200]}") from None
            if not _register(mapped):
                raise ValueError(f"output file {Path(path).name} could not be page-locked (changed while mapped?)")
            self.maps[path] = (ident, mapped)
            while len(self.maps) > MAX_PINNED:  # a candidate naming new files each time pins no more than this
                _unregister(self.maps.pop(next(iter(self.maps)))[1])
        raw = torch.empty(nbytes, dtype=torch.uint8, device=device)
        raw.copy_(self.maps[path][1])  # DMA from the pinned pages; the CPU never touches the mapping
        return raw

    @staticmethod
    def _read(fd: int, nbytes: int) -> torch.Tensor:
        """Into private memory: a later truncation cannot fault a read that is done."""
        buf = bytearray(nbytes)
        view, got = memoryview(buf), 0
        while got < nbytes:
            n = os.readv(fd, [view[got:]])
            if n <= 0:
                raise ValueError("output file shrank while it was read")
            got += n
        return torch.frombuffer(buf, dtype=torch.uint8)

    def close(self) -> None:
        for _, mapped in self.maps.values():
            _unregister(mapped)
        self.maps.clear()
