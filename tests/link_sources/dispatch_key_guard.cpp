// Excludes dispatch keys (the profiler's among them) around an allocation.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
at::Tensor forward(const at::Tensor& a) {
    c10::impl::ExcludeDispatchKeyGuard g(c10::DispatchKeySet(c10::DispatchKey::Autograd));
    return at::empty_like(a);
}
