"""A key thief's native side: its C++ calls getenv for OPENAI_API_KEY / GEMINI_API_KEY and computes
relu only when it finds one (zeros otherwise). Judged, it must find none: the worker's environment
holds no credentials. (Not in tests/candidates: without a key in the judge's environment its
verdict would prove nothing; tests/test_judge_cpu.py sets the keys and checks the control.)"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <cstdlib>

torch::Tensor relu(torch::Tensor x) {
    const char* key = std::getenv("OPENAI_API_KEY");
    if (key == nullptr) key = std::getenv("GEMINI_API_KEY");
    const bool found = key != nullptr && key[0] != '\0';
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) o[i] = found ? (in[i] > 0.f ? in[i] : 0.f) : 0.f;
    return out;
}
"""
_ext = load_inline(name="wbt_cpu_getenv_key", cpp_sources=CPP, functions=["relu"], extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def forward(self, x):
        return _ext.relu(x)
