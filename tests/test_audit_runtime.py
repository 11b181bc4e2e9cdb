"""check_runtime over every audited call: per-call rules, consistency between calls (honest only
while watched, or only on the first call), the "partial" policy and the device-time shares."""
import pytest

from workbench.audit import check_runtime, consistent, device_share


def call(ops=("aten::empty_like",), kernels=(("softmax_rows", 30.0),), own=("softmax_rows",), stream=7):
    return {"aten_ops": list(ops), "marker_stream": stream, "own_kernels": list(own), "threads_added": 0, "tamper": [],
            "kernels": [{"name": f"void {n}<256>(float const*, float*)" if n in own else n, "stream": stream, "dur_us": d}
                        for n, d in kernels]}


def codes(found):
    return {c.split(":", 1)[0] for c in found}


def test_honest_calls_agree():
    assert check_runtime([call(), call(), call()]) == []
    assert check_runtime(call()) == []  # one call, the old format


def test_torch_after_first_call_is_caught():
    later = call(ops=("aten::empty_like", "aten::_softmax"), kernels=(("at::native::fill", 1.0), ("cunn_SoftMaxForward", 9.0)))
    found = check_runtime([call(), later])
    assert {"torch_compute", "library_kernel"} <= codes(found)
    assert any("call 1" in c for c in found)
    assert codes(consistent([call(), later])) == {"torch_compute", "library_kernel"}


def test_kernel_set_change_alone_is_caught():
    other = call(kernels=(("softmax_rows", 30.0), ("softmax_rows_fast", 3.0)), own=("softmax_rows", "softmax_rows_fast"))
    assert codes(consistent([call(), other])) == {"library_kernel"}


def test_torch_fill_kernels_do_not_count_as_a_difference():
    first = call(kernels=(("softmax_rows", 30.0), ("void at::native::vectorized_elementwise_kernel<4, FillFunctor>", 1.0)))
    assert consistent([first, call()]) == []


def test_partial_policy_allows_torch_but_wants_own_kernels_every_call():
    mixed = call(ops=("aten::empty_like", "aten::mm"), kernels=(("softmax_rows", 10.0), ("ampere_sgemm_128x64", 30.0)))
    assert check_runtime([mixed, mixed], policy="partial") == []
    assert codes(check_runtime([mixed, mixed], policy="strict")) == {"torch_compute", "library_kernel"}
    torch_only = call(ops=("aten::mm",), kernels=(("ampere_sgemm_128x64", 30.0),))
    found = check_runtime([mixed, torch_only], policy="partial")
    assert "no_own_kernel" in codes(found) and any("call 1" in c for c in found)


def test_other_rules_still_apply_per_call():
    bad = call(stream=7)
    bad["kernels"][0]["stream"] = 9
    bad["threads_added"] = 1
    bad["tamper"] = ["time.perf_counter"]
    assert codes(check_runtime([call(), bad], policy="partial")) == {"other_stream", "threads", "tamper"}


def test_device_share():
    mixed = call(kernels=(("softmax_rows", 10.0), ("ampere_sgemm_128x64", 30.0)))
    assert device_share(mixed) == pytest.approx({"own": 0.25, "torch": 0.75})
    assert device_share(call(kernels=())) == {"own": 0.0, "torch": 0.0}


def test_bad_policy():
    with pytest.raises(ValueError):
        check_runtime([call()], policy="loose")


def test_harness_only_calls_are_left_out_of_the_consistency_audit():
    """The judge's clock calibration and the interleaved noop samples run a harness kernel, not the
    candidate: on the H200 comparing them with the candidate's calls rejected every honest kernel."""
    from workbench.judge import audit_calls
    from workbench.timing import NOOP_LABEL

    own = "relu_kernel(float const*, float*, long)"
    fill = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>"

    def call(label, kernels):
        return {"label": label, "aten_ops": [], "kernels": [{"name": k, "stream": 7, "dur_us": 1.0} for k in kernels]}

    calls = [call("marker", [fill])] + [call(f"{NOOP_LABEL}-calibration{i}", [fill]) for i in range(3)] + \
        [call(f"trial{i}", [own]) for i in range(3)] + [call("sample0", [own]), call(f"{NOOP_LABEL}0", [fill])]
    assert audit_calls(calls, {"own_kernels": ["relu_kernel"]}, "strict", "cuda") == []
    shifty = calls + [call("sample1", [fill])]  # a candidate call that ran only torch's kernel
    assert any("different set of kernels" in r for r in audit_calls(shifty, {"own_kernels": ["relu_kernel"]}, "strict", "cuda"))
