"""Prompt text and the parsing of model replies."""

from __future__ import annotations

import random

import pytest

from workbench.prompts import (
    IDEA_CATEGORIES,
    REPORT_CHARS,
    extract_code,
    idea_prompt,
    implementation_prompt,
    parse_ideas,
    repair_prompt,
)

PROBLEM = '''import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=1)

def get_inputs():
    return [torch.randn(4096, 65536)]

def get_init_inputs():
    return []
'''

GPU = {"name": "NVIDIA H200", "sm_count": 132, "memory_bandwidth_gbs": 4800}

BEST = [
    {"source": "class ModelNew: # best-kernel-one", "ms": 1.2345, "speedup_eager": 1.118,
     "speedup_compile": 0.97},
    {"source": "class ModelNew: # best-kernel-two", "ms": 1.5, "speedup_eager": 0.9, "speedup_compile": None},
]

HISTORY = [
    {"round": 1, "idea": "Online softmax in a single pass", "outcome": "correct", "speedup": 1.118},
    {"round": 1, "idea": "Use half precision\nfor the exponentials", "outcome": "mismatch: max error 3e-2",
     "speedup": None},
    {"round": 2, "idea": "Warp-shuffle row reductions", "outcome": "build failed", "speedup": None},
]

GOOD = '''import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_src = r"""
#include <cuda_runtime.h>
#define BLOCK 256  // tune: 128, 256, 512
__global__ void relu_kernel(const float* x, float* y, int n) {
    int i = blockIdx.x * BLOCK + threadIdx.x;
    if (i < n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}
void launch_relu(const float* x, float* y, int n, cudaStream_t s) {
    relu_kernel<<<(n + BLOCK - 1) / BLOCK, BLOCK, 0, s>>>(x, y, n);
}
"""

cpp_src = "#include <torch/extension.h>\\n"

ext = load_inline(name="relu", cpp_sources=cpp_src, cuda_sources=cuda_src,
                  functions=["relu"], no_implicit_headers=True)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return ext.relu(x)
'''


def user_text(messages: list[dict]) -> str:
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
    assert all(isinstance(m["content"], str) for m in messages)
    return messages[-1]["content"]


# -- prompts ------------------------------------------------------------------------------------

def test_idea_prompt_shows_everything_the_model_conditions_on() -> None:
    text = user_text(idea_prompt(PROBLEM, GPU, BEST, HISTORY, k=4))
    assert "torch.softmax(x, dim=1)" in text
    assert "NVIDIA H200" in text and "132" in text
    for h in HISTORY:
        assert " ".join(h["idea"].split()) in text
        assert h["outcome"] in text
    assert "1.118x" in text  # the measured speedup of the first idea
    assert "best-kernel-one" in text and "best-kernel-two" in text
    assert "1.2345 ms" in text and "0.970x vs torch.compile" in text
    for name, _ in IDEA_CATEGORIES:
        assert name in text
    assert "exactly 4" in text
    assert len(IDEA_CATEGORIES) == 6


def test_idea_prompt_first_round() -> None:
    text = user_text(idea_prompt(PROBLEM, {}, [], [], k=2))
    assert "first round" in text and "No correct kernel yet" in text
    assert "exactly 2" in text


def test_implementation_prompt() -> None:
    conventions = "## The fast-build pattern\nno_implicit_headers=True  // tune: marks"
    idea = "Use float4 vectorized loads and a warp-shuffle reduction."
    text = user_text(implementation_prompt(PROBLEM, idea, "# seed-kernel-source", GPU, conventions))
    assert idea in text and "# seed-kernel-source" in text and conventions.strip() in text
    assert "ModelNew" in text and "```python" in text
    assert "// tune:" in text and "# tune:" in text
    assert "torch.softmax" in text and "NVIDIA H200" in text
    without_seed = user_text(implementation_prompt(PROBLEM, idea, None, GPU, conventions))
    assert "Starting point" not in without_seed and "Starting point" in text


def test_repair_prompt_feeds_back_the_failure() -> None:
    report = "kernel.cu(12): error: identifier \"blockDim\" is undefined"
    text = user_text(repair_prompt(PROBLEM, GOOD, "build failed", report))
    assert "build failed" in text and report in text and "relu_kernel" in text
    assert "ModelNew" in text and "```python" in text


def test_repair_prompt_clips_long_reports_keeping_head_and_tail() -> None:
    report = "FIRST-ERROR\n" + "noise\n" * 5000 + "LAST-LINE"
    text = user_text(repair_prompt(PROBLEM, GOOD, "build failed", report))
    assert "FIRST-ERROR" in text and "LAST-LINE" in text
    assert "characters cut" in text
    assert len(text) < len(report) and len(text) < REPORT_CHARS + len(GOOD) + len(PROBLEM) + 2000


# -- parse_ideas --------------------------------------------------------------------------------

THREE = ["Vectorized float4 loads", "Warp shuffle reductions", "Unroll the inner loop"]


@pytest.mark.parametrize(
    "reply",
    [
        "1. Vectorized float4 loads\n2. Warp shuffle reductions\n3. Unroll the inner loop",
        "1) Vectorized float4 loads\n2) Warp shuffle reductions\n3) Unroll the inner loop",
        "**1.** Vectorized float4 loads\n**2.** Warp shuffle reductions\n**3.** Unroll the inner loop",
        "Here are my ideas:\n\n1. Vectorized float4 loads\n2. Warp shuffle reductions\n"
        "3. Unroll the inner loop\n\nLet me know which to implement.",
        "- Vectorized float4 loads\n- Warp shuffle reductions\n* Unroll the inner loop",
        '["Vectorized float4 loads", "Warp shuffle reductions", "Unroll the inner loop"]',
        'Sure:\n```json\n["Vectorized float4 loads", "Warp shuffle reductions",'
        ' "Unroll the inner loop"]\n```',
        '{"ideas": [{"idea": "Vectorized float4 loads"}, {"description": "Warp shuffle reductions"},'
        ' {"text": "Unroll the inner loop"}]}',
        "Idea 1: Vectorized float4 loads\nIdea 2: Warp shuffle reductions\nIdea 3: Unroll the inner loop",
        "(1) Vectorized float4 loads\n(2) Warp shuffle reductions\n(3) Unroll the inner loop",
    ],
)
def test_parse_ideas_reply_shapes(reply: str) -> None:
    assert parse_ideas(reply, 3) == THREE


def test_parse_ideas_titles_and_paragraphs() -> None:
    reply = (
        "### 1. Vectorize\nUse float4 loads so each thread moves 16 bytes.\n\n"
        "**2. Fuse the passes**\n\nCompute max and sum in one online pass.\n\n"
        "3. **Shuffle**: reduce rows with __shfl_down_sync.\n   - no shared memory needed\n"
    )
    assert parse_ideas(reply, 5) == [
        "Vectorize: Use float4 loads so each thread moves 16 bytes.",
        "Fuse the passes: Compute max and sum in one online pass.",
        "Shuffle: reduce rows with __shfl_down_sync. - no shared memory needed",
    ]


def test_parse_ideas_nested_lists_count_once() -> None:
    reply = "1. Tile rows\n   1. load a tile\n   2. reduce it\n2. Cache the max\n"
    ideas = parse_ideas(reply, 5)
    assert len(ideas) == 2 and ideas[0].startswith("Tile rows") and "load a tile" in ideas[0]


def test_parse_ideas_at_most_k_and_maybe_fewer() -> None:
    many = "\n".join(f"{i}. idea number {i}" for i in range(1, 9))
    assert parse_ideas(many, 3) == ["idea number 1", "idea number 2", "idea number 3"]
    assert parse_ideas("1. only one idea here", 4) == ["only one idea here"]
    assert parse_ideas(many, 0) == []


def test_parse_ideas_drops_duplicates_and_empty_items() -> None:
    reply = "1. Tile in shared memory\n2. tile in  shared memory\n3. \n4. ...\n5. Unroll"
    assert parse_ideas(reply, 5) == ["Tile in shared memory", "Unroll"]


@pytest.mark.parametrize(
    "reply", ["", "   \n\n", "I cannot help with that.", "{not json", "[1, 2, 3]", "3.5 ms", None, 42]
)
def test_parse_ideas_garbage_gives_nothing(reply: object) -> None:
    assert parse_ideas(reply, 3) == []  # type: ignore[arg-type]


def test_parse_ideas_ignores_numbers_inside_prose() -> None:
    reply = "The kernel takes\n3.5 ms today.\n1. Use float4 loads\n2. Fuse passes"
    assert parse_ideas(reply, 3) == ["Use float4 loads", "Fuse passes"]


# -- extract_code -------------------------------------------------------------------------------

def test_extract_fenced() -> None:
    assert extract_code(f"Here you go:\n```python\n{GOOD}```\nThis is fast because...") == GOOD


def test_extract_unlabelled_and_tilde_fences() -> None:
    assert extract_code(f"```\n{GOOD}```") == GOOD
    assert extract_code(f"~~~py\n{GOOD}~~~") == GOOD


def test_extract_raw_code_with_prose_around() -> None:
    assert extract_code(GOOD) == GOOD
    assert extract_code(f"# Solution\nHere is the file:\n\n{GOOD}\nIt should be 2x faster.") == GOOD


def test_extract_unterminated_fence() -> None:
    # Cut after the code: the file is whole, only the closing fence is missing.
    assert extract_code(f"```python\n{GOOD}") == GOOD
    # Cut inside the code: nothing usable.
    assert extract_code(f"```python\n{GOOD[: len(GOOD) * 2 // 3]}") is None


def test_extract_picks_the_block_with_model_new() -> None:
    reply = (
        "First the reference:\n```python\nclass Model:\n    pass\n```\n"
        f"Now the kernel:\n```python\n{GOOD}```\n"
        "Usage:\n```python\nm = ModelNew()\n```"
    )
    assert extract_code(reply) == GOOD


def test_extract_prefers_the_last_usable_version() -> None:
    draft = GOOD.replace("BLOCK 256", "BLOCK 128")
    assert extract_code(f"Draft:\n```python\n{draft}```\nFinal:\n```python\n{GOOD}```") == GOOD
    broken = GOOD.replace("def forward(self, x):", "def forward(self x):")
    assert extract_code(f"```python\n{GOOD}```\nOops, revised:\n```python\n{broken}```") == GOOD


def test_extract_does_not_stitch_a_separate_cuda_block() -> None:
    reply = (
        "```cuda\n__global__ void k(float* y) { y[0] = 1.f; }\n```\n"
        "```python\nimport torch.nn as nn\nfrom torch.utils.cpp_extension import load_inline\n"
        "ext = load_inline(name='k', cpp_sources='', cuda_sources=cuda_source)\n"
        "class ModelNew(nn.Module):\n    def forward(self, x):\n        return ext.k(x)\n```"
    )
    assert extract_code(reply) is None
    reads_file = reply.replace("cuda_sources=cuda_source", "cuda_sources=open('k.cu').read()")
    assert extract_code(reads_file) is None
    # A separate CUDA block shown for explanation is fine when the python file is whole.
    assert extract_code(f"```cuda\n__global__ void k() {{}}\n```\n```python\n{GOOD}```") == GOOD


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "I'm sorry, I can't do that.",
        "```python\nimport torch\nprint('no model here')\n```",
        "```python\nclass ModelNew(nn.Module):\n    def forward(self x):\n        return x\n```",  # syntax
        "```python\nimport torch.nn as nn\nclass ModelNew(nn.Module):\n    def forward(self, x):\n"
        "        return kernel(x)\n```",  # refers to an undefined name
        "ModelNew ModelNew ``` ``` ```",
        "```\n```",
        None,
        b"class ModelNew: pass",
    ],
)
def test_extract_rejects_unusable_replies(reply: object) -> None:
    assert extract_code(reply) is None  # type: ignore[arg-type]


def test_extract_never_raises_on_junk() -> None:
    rng = random.Random(1234)
    pieces = ["```", "```python\n", "~~~", "\n", "class ModelNew", "(nn.Module):", "    ", "def ",
              "import torch", '"""', "'''", "\x00", "é", "\\", "{", ")", "#", "__global__", "1. ", GOOD[:200]]
    for _ in range(400):
        junk = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        result = extract_code(junk)
        assert result is None or "ModelNew" in result
