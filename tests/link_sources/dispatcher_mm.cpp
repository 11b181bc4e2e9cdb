// at::mm through the dispatcher: torch compute (allowed only under policy "partial").
#include <ATen/core/Tensor.h>
#include <ATen/ops/mm.h>
at::Tensor forward(const at::Tensor& a, const at::Tensor& b) { return at::mm(a, b); }
