"""The correctness protocol: pure functions on tensors and on the metadata of outputs.

A candidate's output passes when, for every trial, it is a plain tensor of the reference's
shape, dtype and device, finite wherever the reference is finite, within the element-wise
tolerance |out - ref| <= atol + rtol * |ref|, and within the scale-aware bound
||out - ref|| / ||ref|| <= rel_l2_tol. The second check is what stops outputs that are tiny
in absolute terms (softmax over 65536 columns averages 1.5e-5) from passing as zeros.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Tolerance:
    atol: float
    rtol: float
    rel_l2: float
    tightened: list[str] = field(default_factory=list)  # why, if the problem's own check was too loose
    degenerate: list[str] = field(default_factory=list)  # trivial outputs that pass even the tightened check



@dataclass
class Comparison:
    ok: bool
    codes: list[str]
    max_abs_err: float = 0.0
    rel_l2_err: float = 0.0
    mismatched: int = 0
    numel: int = 0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(ok=self.ok, codes=self.codes, max_abs_err=self.max_abs_err, rel_l2_err=self.rel_l2_err,
                    mismatched=self.mismatched, numel=self.numel, detail=self.detail)


def describe(t: Any) -> dict[str, Any]:
    """What the judge needs to know of an output without trusting it (made in the worker)."""
    if not isinstance(t, torch.Tensor):
        return {"kind": type(t).__name__}
    return {"kind": "tensor", "type": f"{type(t).__module__}.{type(t).__qualname__}", "shape": list(t.shape),
            "dtype": str(t.dtype), "device": str(t.device), "layout": str(t.layout),
            "requires_grad": bool(t.requires_grad)}


def check_meta(meta: dict[str, Any], ref: torch.Tensor) -> list[str]:
    """Reason codes for an output whose kind, type, shape, dtype or device is off. Strict: no broadcasting, no casts."""
    if meta.get("kind") != "tensor":
        return [f"not_plain_tensor: output is a {meta.get('kind')}, not a torch.Tensor"]
    codes = []
    if meta["type"] != "torch.Tensor" or meta["layout"] != "torch.strided":
        codes.append(f"not_plain_tensor: {meta['type']} with layout {meta['layout']}")
    if meta["shape"] != list(ref.shape):
        codes.append(f"wrong_shape: {meta['shape']} instead of {list(ref.shape)}")
    if meta["dtype"] != str(ref.dtype):
        codes.append(f"wrong_dtype: {meta['dtype']} instead of {ref.dtype}")
    if torch.device(meta["device"]).type != ref.device.type:
        codes.append(f"wrong_device: {meta['device']} instead of {ref.device}")
    return codes


def compare(out: torch.Tensor, ref: torch.Tensor, tol: Tolerance) -> Comparison:
    """Element-wise and scale-aware comparison; `out` must already have passed check_meta."""
    n = ref.numel()
    o = out.detach().to(torch.float32)
    r = ref.detach().to(device=o.device, dtype=torch.float32)
    ref_finite = torch.isfinite(r)
    bad_nonfinite = int((ref_finite & ~torch.isfinite(o)).sum())
    if bad_nonfinite:
        return Comparison(False, [f"nonfinite: {bad_nonfinite} of {n} outputs are NaN/inf where the reference is finite"],
                          float("inf"), float("inf"), bad_nonfinite, n)
    diff = torch.where(ref_finite, (o - r).abs(), torch.zeros((), device=o.device))
    r0 = torch.where(ref_finite, r, torch.zeros((), device=o.device))
    over = diff > tol.atol + tol.rtol * r0.abs()
    mismatched = int(over.sum())
    max_abs = float(diff.max()) if n else 0.0
    ref_norm = float(torch.linalg.vector_norm(r0.double() if r0.device.type == "cpu" else r0))
    err_norm = float(torch.linalg.vector_norm(diff.double() if diff.device.type == "cpu" else diff))
    rel = err_norm / ref_norm if ref_norm > 0 else (0.0 if err_norm == 0 else float("inf"))
    codes = []
    if mismatched:
        idx = int(over.reshape(-1).nonzero()[0, 0])
        codes.append(f"mismatch: {mismatched} of {n} elements outside atol={tol.atol:g}, rtol={tol.rtol:g} "
                     f"(max abs err {max_abs:.3g}; first at flat index {idx}: got {float(o.reshape(-1)[idx]):.6g}, "
                     f"expected {float(r.reshape(-1)[idx]):.6g})")
    if rel > tol.rel_l2:
        codes.append(f"rel_error: ||out-ref||/||ref|| = {rel:.3g} > {tol.rel_l2:g}")
    return Comparison(not codes, codes, max_abs, rel, mismatched, n)


def trivial_outputs(ref: torch.Tensor, inputs: list[Any]) -> dict[str, torch.Tensor]:
    """Outputs that took no real work; each must fail the check."""
    flat = ref.reshape(-1)
    finite = flat[torch.isfinite(flat)]
    mean = float(finite.float().mean()) if finite.numel() else 0.0
    out = {"zeros": torch.zeros_like(ref)}
    if flat.numel() > 1:  # a one-element output's "constant" is the answer itself
        out["constant"] = torch.full_like(ref, mean)
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and x.shape == ref.shape:
            out[f"input{i}"] = x.to(ref.dtype)
    half = flat.clone()
    half[flat.numel() // 2:] = 0
    out["first_half"] = half.reshape(ref.shape)
    if flat.numel() > 1:  # every other element copied from its neighbour: half the work
        sub = flat.clone()
        sub[1::2] = flat[0:-1:2][: sub[1::2].numel()]
        out["subsample"] = sub.reshape(ref.shape)
    return out


def calibrate(ref: torch.Tensor, inputs: list[Any], tol: Tolerance, max_rounds: int = 6) -> Tolerance:
    """Tighten the check until no trivial output passes it (at most 4**max_rounds); record why.

    A trivial output that still passes after max_rounds makes the problem degenerate: its
    output cannot tell right from trivial (`Tolerance.degenerate` names which ones).
    """
    tol = Tolerance(tol.atol, tol.rtol, tol.rel_l2, list(tol.tightened), list(tol.degenerate))
    for name, t in trivial_outputs(ref, inputs).items():
        if torch.equal(t, ref):  # e.g. an identity problem: the "trivial" output is the right one
            continue
        rounds = 0
        while (passes := compare(t, ref, tol).ok) and rounds < max_rounds:
            before = (tol.atol, tol.rtol, tol.rel_l2)
            tol.atol, tol.rtol, tol.rel_l2 = tol.atol / 4, tol.rtol / 4, tol.rel_l2 / 4
            tol.tightened.append(f"{name} output passed atol={before[0]:g} rtol={before[1]:g} rel_l2={before[2]:g}; "
                                 f"tightened to atol={tol.atol:g} rtol={tol.rtol:g} rel_l2={tol.rel_l2:g}")
            rounds += 1
        if passes and name not in tol.degenerate:  # passes: the check at the final tolerance
            tol.degenerate.append(name)
    return tol


# -- outputs of any structure: tensors, Python scalars, None, nested tuples/lists/dicts -----------------------
SCALARS = (bool, int, float, complex)


def describe_tree(obj: Any, leaf: Any = None) -> dict[str, Any]:
    """A JSON description of an output of any nesting (made in the worker; `leaf(tensor)` may add fields)."""
    if isinstance(obj, torch.Tensor):
        d = describe(obj)
        if leaf is not None:
            d.update(leaf(obj))
        return d
    if obj is None:
        return {"kind": "none"}
    if isinstance(obj, SCALARS):
        value = [obj.real, obj.imag] if isinstance(obj, complex) else obj
        if isinstance(obj, float) and obj != obj or obj in (float("inf"), float("-inf")):
            value = repr(obj)
        return {"kind": "scalar", "type": type(obj).__name__, "value": value}
    if isinstance(obj, (tuple, list)):
        return {"kind": "seq", "type": type(obj).__name__, "items": [describe_tree(x, leaf) for x in obj]}
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return {"kind": "dict", "type": type(obj).__name__, "items": {k: describe_tree(v, leaf) for k, v in obj.items()}}
    return {"kind": "other", "type": f"{type(obj).__module__}.{type(obj).__qualname__}"}


def _scalar_value(meta: dict[str, Any]) -> Any:
    v = meta.get("value")
    if meta.get("type") == "complex" and isinstance(v, list):
        return complex(*v)
    return float(v) if isinstance(v, str) else v


def compare_tree(meta: dict[str, Any], ref: Any, tol: Tolerance, load: Any, where: str = "output"
                 ) -> tuple[list[str], list[dict[str, Any]]]:
    """Reason codes and per-tensor comparison details for an output tree against the reference object.

    Every leaf is compared: tensors by `compare` (after `check_meta`; `load(meta)` brings the
    candidate's tensor into this process), Python scalars by value (floats with the tolerance),
    None only by None, and the structure (kinds, lengths, keys) exactly.
    """
    kind = meta.get("kind")
    if isinstance(ref, torch.Tensor):
        bad = check_meta(meta, ref)
        if bad:
            return [f"{c.split(':', 1)[0]}: {where}: {c.split(':', 1)[1].strip()}" for c in bad], []
        try:
            out = load(meta)
        except (OSError, ValueError, KeyError) as e:
            return [f"not_plain_tensor: {where} could not be read ({e})"], []
        cmp = compare(out, ref, tol)
        return [f"{c.split(':', 1)[0]}: {where}: {c.split(':', 1)[1].strip()}" for c in cmp.codes], [{"where": where, **cmp.as_dict()}]
    if ref is None:
        return ([] if kind == "none" else [f"wrong_output: {where} is a {meta.get('type', kind)}, expected None"]), []
    if isinstance(ref, SCALARS):
        if kind != "scalar":
            return [f"wrong_output: {where} is a {meta.get('type', kind)}, expected a Python {type(ref).__name__}"], []
        got = _scalar_value(meta)
        if isinstance(ref, bool) or isinstance(got, bool):
            ok = type(got) is type(ref) and got == ref
        elif isinstance(ref, int) and isinstance(got, int):
            ok = got == ref
        else:
            a, b = complex(got), complex(ref)
            ok = (a == b) or (abs(a - b) <= tol.atol + tol.rtol * abs(b)) or (a != a and b != b)
        return ([] if ok else [f"mismatch: {where} is {got!r}, expected {ref!r}"]), []
    if isinstance(ref, (tuple, list)):
        items = meta.get("items") if kind == "seq" else None
        if items is None:
            return [f"wrong_output: {where} is a {meta.get('type', kind)}, expected a {type(ref).__name__}"], []
        if len(items) != len(ref):
            return [f"wrong_output: {where} has {len(items)} items, expected {len(ref)}"], []
        codes, details = [], []
        for i, (m, r) in enumerate(zip(items, ref)):
            c, d = compare_tree(m, r, tol, load, f"{where}[{i}]")
            codes += c
            details += d
        return codes, details
    if isinstance(ref, dict):
        items = meta.get("items") if kind == "dict" else None
        if items is None or set(items) != set(ref):
            return [f"wrong_output: {where} is not a dict with keys {sorted(map(str, ref))}"], []
        codes, details = [], []
        for k in ref:
            c, d = compare_tree(items[k], ref[k], tol, load, f"{where}[{k!r}]")
            codes += c
            details += d
        return codes, details
    same = kind == "other" and meta.get("type") == f"{type(ref).__module__}.{type(ref).__qualname__}"
    return ([] if same else [f"wrong_output: {where} is a {meta.get('type', kind)}, expected {type(ref).__name__}"]), []


def tensor_leaves(obj: Any) -> list[torch.Tensor]:
    """Every tensor inside an output of any nesting, in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for x in obj for t in tensor_leaves(x)]
    if isinstance(obj, dict):
        return [t for x in obj.values() for t in tensor_leaves(x)]
    return []
