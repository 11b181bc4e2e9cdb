"""How output bytes cross from the worker to the judge (workbench.exchange): slot files reused,
read back exactly, and nothing outside the worker's scratch, of the wrong size or not a regular
file is ever read."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from workbench.exchange import Reader, Slots


def _meta(path: str, t: torch.Tensor) -> dict:
    return {"path": path, "dtype": str(t.dtype), "shape": list(t.shape)}


def test_slots_are_reused_and_read_back_exactly(tmp_path: Path):
    slots, reader = Slots(tmp_path, pin=False), Reader(tmp_path)
    for dtype in (torch.float32, torch.float16, torch.int64):
        a = (torch.randn(3, 5) * 100).to(dtype)
        path = slots.put(0, a.reshape(-1).view(torch.uint8))
        assert torch.equal(reader.load(_meta(path, a), "cpu"), a)
    b = torch.tensor([True, False, True])
    path = slots.put(1, b.to(torch.uint8))
    assert torch.equal(reader.load(_meta(path, b), "cpu"), b)
    again = slots.put(1, torch.tensor([False, False, True]).to(torch.uint8))
    assert again == path  # the same file, rewritten: no file per output
    assert reader.load(_meta(path, b), "cpu").tolist() == [False, False, True]
    assert len(list(tmp_path.iterdir())) == 4  # one per (position, size)


def test_reader_refuses_files_it_must_not_read(tmp_path: Path):
    scratch, elsewhere = tmp_path / "scratch", tmp_path / "elsewhere"
    scratch.mkdir(), elsewhere.mkdir()
    t = torch.arange(4, dtype=torch.float32)
    outside = elsewhere / "secret.bin"
    outside.write_bytes(t.numpy().tobytes())
    reader = Reader(scratch)
    with pytest.raises(ValueError, match="not in the worker's scratch"):
        reader.load(_meta(str(outside), t), "cpu")
    with pytest.raises(ValueError, match="not in the worker's scratch"):
        reader.load(_meta(str(scratch / ".." / "elsewhere" / "secret.bin"), t), "cpu")
    os.symlink(outside, scratch / "link.bin")
    with pytest.raises(ValueError, match="cannot be opened as a plain file"):
        reader.load(_meta(str(scratch / "link.bin"), t), "cpu")
    (scratch / "short.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match="holds 8 bytes, expected 16"):
        reader.load(_meta(str(scratch / "short.bin"), t), "cpu")


def test_a_name_swapped_for_a_fifo_or_symlink_is_refused_not_waited_on(tmp_path: Path):
    """The candidate owns its scratch: between its reply and the judge's read it can put a FIFO
    (an open for reading would block the judge forever) or a symlink under the name."""
    t = torch.arange(4, dtype=torch.float32)
    os.mkfifo(tmp_path / "out-0-16.bin")
    with pytest.raises(ValueError, match="not a regular file"):
        Reader(tmp_path).load(_meta(str(tmp_path / "out-0-16.bin"), t), "cpu")
    target = tmp_path / "real.bin"
    target.write_bytes(t.numpy().tobytes())
    os.symlink(target, tmp_path / "out-1-16.bin")
    with pytest.raises(ValueError, match="cannot be opened as a plain file"):
        Reader(tmp_path).load(_meta(str(tmp_path / "out-1-16.bin"), t), "cpu")
