"""The correctness protocol's pure functions: compare, calibrate, check_meta."""
from __future__ import annotations

import torch

from workbench.verify import Tolerance, calibrate, check_meta, compare, describe, trivial_outputs

DEFAULT = Tolerance(1e-2, 1e-2, 1e-2)


def softmax_ref(rows: int = 16, cols: int = 65536) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.softmax(torch.randn(rows, cols, generator=g), dim=1)


def test_compare_accepts_a_close_answer():
    ref = softmax_ref()
    cmp = compare(ref * (1 + 1e-4), ref, DEFAULT)
    assert cmp.ok and cmp.codes == [] and cmp.mismatched == 0 and cmp.numel == ref.numel()
    assert 0 < cmp.rel_l2_err < 1e-3


def test_compare_catches_zeros_at_softmax_scale():
    """Outputs average 1.5e-5: all zeros pass |out-ref| <= 1e-2 everywhere, but not the relative check."""
    ref = softmax_ref()
    assert float(ref.max()) < 1e-2
    cmp = compare(torch.zeros_like(ref), ref, DEFAULT)
    assert not cmp.ok
    assert cmp.mismatched == 0  # the element-wise check alone is fooled ...
    assert [c.split(":")[0] for c in cmp.codes] == ["rel_error"]  # ... the scale-aware one is not
    assert abs(cmp.rel_l2_err - 1.0) < 1e-6


def test_compare_reports_mismatch_and_nonfinite():
    ref = torch.linspace(-1, 1, 1000)
    out = ref.clone()
    out[10] += 0.5
    cmp = compare(out, ref, DEFAULT)
    assert not cmp.ok and cmp.mismatched == 1 and "flat index 10" in cmp.codes[0]
    out = ref.clone()
    out[3] = float("nan")
    cmp = compare(out, ref, DEFAULT)
    assert not cmp.ok and cmp.codes[0].startswith("nonfinite")
    # non-finite where the reference is non-finite too is fine
    ref2 = ref.clone()
    ref2[3] = float("inf")
    out2 = ref2.clone()
    assert compare(out2, ref2, DEFAULT).ok


def test_calibrate_tightens_a_too_loose_tolerance_and_says_why():
    ref = softmax_ref()
    x = torch.randn(ref.shape)
    loose = Tolerance(atol=1.0, rtol=0.0, rel_l2=10.0)
    assert compare(torch.zeros_like(ref), ref, loose).ok  # the problem's own check lets zeros through
    tol = calibrate(ref, [x], loose)
    assert loose.atol == 1.0 and loose.rel_l2 == 10.0 and loose.tightened == []  # the input is not modified
    assert tol.atol < 1.0 and tol.rel_l2 < 10.0
    assert tol.tightened and any(t.startswith("zeros output passed") for t in tol.tightened)
    for name, trivial in trivial_outputs(ref, [x]).items():
        assert not compare(trivial, ref, tol).ok, f"{name} still passes {tol}"
    assert compare(ref * (1 + 1e-5), ref, tol).ok  # an honest answer still passes


def test_calibrate_leaves_a_tight_enough_check_alone():
    ref = torch.randn(64, 256)
    x = torch.randn(64, 256)
    tol = calibrate(ref, [x], DEFAULT)
    assert (tol.atol, tol.rtol, tol.rel_l2) == (1e-2, 1e-2, 1e-2) and tol.tightened == []


def test_calibrate_skips_a_trivial_output_that_is_the_answer():
    """An identity problem: returning the input is right, not a cheat; the check is not tightened for it."""
    x = torch.randn(32, 32)
    tol = calibrate(x.clone(), [x], DEFAULT)
    assert not any(t.startswith("input0") for t in tol.tightened)
    assert compare(x.clone(), x, tol).ok


def test_one_element_output_is_not_tightened_forever():
    x = torch.tensor([0.5])
    ref = x + 1e-7  # returning the input is within any tolerance calibrate can reach
    tol = calibrate(ref, [x], DEFAULT, max_rounds=6)
    assert len(tol.tightened) <= 6
    assert tol.atol >= 1e-2 / 4**6 and tol.rel_l2 >= 1e-2 / 4**6
    assert compare(ref.clone(), ref, tol).ok
    assert "constant" not in trivial_outputs(ref, [x])  # a one-element output's constant is the answer


def test_one_element_sum_keeps_the_problem_tolerance():
    ref = torch.tensor([3.25])
    tol = calibrate(ref, [torch.randn(100)], DEFAULT)
    assert tol.tightened == [] and (tol.atol, tol.rel_l2) == (1e-2, 1e-2)


class Sub(torch.Tensor):
    pass


def codes(meta, ref) -> set[str]:
    return {c.split(":")[0] for c in check_meta(meta, ref)}


def test_check_meta_accepts_a_plain_tensor():
    ref = torch.randn(4, 8)
    assert check_meta(describe(torch.empty(4, 8)), ref) == []


def test_check_meta_rejects_subclass_shape_dtype_device():
    ref = torch.randn(4, 8)
    sub = torch.Tensor._make_subclass(Sub, torch.randn(4, 8))
    assert codes(describe(sub), ref) == {"not_plain_tensor"}
    assert codes(describe(torch.randn(1, 8)), ref) == {"wrong_shape"}  # broadcastable is still wrong
    assert codes(describe(torch.randn(32)), ref) == {"wrong_shape"}  # same numel is still wrong
    assert codes(describe(torch.randn(4, 8, dtype=torch.float64)), ref) == {"wrong_dtype"}
    assert codes(describe(torch.randn(4, 8, dtype=torch.bfloat16)), ref) == {"wrong_dtype"}
    assert codes(describe(torch.empty(4, 8, device="meta")), ref) == {"wrong_device"}
    assert codes({**describe(torch.empty(4, 8)), "device": "cuda:0"}, ref) == {"wrong_device"}
    assert codes(describe(torch.randn(4, 8).to_sparse()), ref) >= {"not_plain_tensor"}
    assert codes(describe((torch.randn(4, 8),)), ref) == {"not_plain_tensor"}
    assert codes(describe(3.0), ref) == {"not_plain_tensor"}
    several = check_meta(describe(torch.randn(2, 8, dtype=torch.float16)), ref)
    assert {c.split(":")[0] for c in several} == {"wrong_shape", "wrong_dtype"}


# -- outputs of any structure ------------------------------------------------------------------------------
from workbench.verify import compare_tree, describe_tree, tensor_leaves  # noqa: E402


def _tree(obj):
    """The worker's description of `obj`, with tensors handed over by reference (no files)."""
    keep = {}

    def leaf(t):
        keep[id(t)] = t
        return {"ref": id(t)}

    return describe_tree(obj, leaf), (lambda meta: keep[meta["ref"]])


def _codes(out, ref):
    tree, load = _tree(out)
    codes, _ = compare_tree(tree, ref, DEFAULT, load)
    return [c.split(":", 1)[0] for c in codes]


def test_every_tensor_of_a_nested_output_is_compared():
    a, b, c = torch.randn(4), torch.randn(5), torch.randn(6)
    assert _codes(((a, b), c), ((a, b), c)) == []
    assert "mismatch" in _codes(((a, b + 1), c), ((a, b), c))  # a wrong b inside a nested tuple
    assert _codes(((a,), c), ((a, b), c)) == ["wrong_output"]  # the structure too
    assert len(tensor_leaves({"x": [a, (b,)], "y": c})) == 3


def test_scalars_and_none_are_compared():
    assert _codes(3.0, 3.0) == [] and _codes(3.0 + 1e-4, 3.0) == []
    assert _codes(12345.0, 3.0) == ["mismatch"]
    assert _codes(torch.tensor(3.0), 3.0) == ["wrong_output"]  # a tensor where the model returns a float
    assert _codes(torch.zeros(3), None) == ["wrong_output"]  # a tensor where the model returns None
    assert _codes(None, None) == [] and _codes(7, 7) == [] and _codes(True, 1) == ["mismatch"]
    assert _codes(float("nan"), float("nan")) == []


def test_a_constant_reference_is_flagged_degenerate():
    """Like KernelBench level2/36: the output is constant to 3e-8, so a constant output passes any tightening."""
    ref = torch.full((64, 64), 0.5) + 3e-8 * torch.randn(64, 64)
    tol = calibrate(ref, [], DEFAULT)
    assert "constant" in tol.degenerate
    assert calibrate(softmax_ref(), [], DEFAULT).degenerate == []
