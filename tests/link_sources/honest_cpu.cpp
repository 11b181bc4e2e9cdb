// Honest: allocation, views, casts, data_ptr, TORCH_CHECK, at::parallel_for and OpenMP; the
// dispatch guard that torch::empty_like and the other torch:: factories hold.
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>
at::Tensor forward(const at::Tensor& x_in) {
    TORCH_CHECK(x_in.scalar_type() == at::kFloat, "expected float32");
    at::Tensor x = x_in.contiguous().view({-1});
    at::Tensor out;
    {
        c10::impl::ExcludeDispatchKeyGuard below_autograd(c10::autograd_dispatch_keyset);
        out = at::empty_like(x);
    }
    at::Tensor scratch = at::zeros({4}, x.options());
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    at::parallel_for(0, x.numel(), 1024, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) o[i] = in[i] > 0.f ? in[i] : 0.f;
    });
    #pragma omp parallel for
    for (int64_t i = 0; i < x.numel(); ++i) o[i] += 0.f;
    (void)scratch;
    return out.view(x_in.sizes()).to(at::kFloat);
}
