"""The judge recognises a candidate's own kernels by the names its CUDA source defines; a name it
misses turns an honest kernel into a 'library_kernel' rejection, so the parser must see through
templates and launch attributes (a cluster softmax was rejected that way on the H200)."""
import pytest

from workbench.audit import kernel_names


@pytest.mark.parametrize("src, names", [
    ("__global__ void a(int x) {}", {"a"}),
    ("template <int V>\n__global__ void __cluster_dims__(CLUSTER, 1, 1) __launch_bounds__(THREADS)\nsoftmax(const float* x) {}",
     {"softmax"}),
    ("__global__ void __launch_bounds__((NT), MINB(2)) k2(float* y) {}", {"k2"}),
    ('extern "C" __global__ void __attribute__((noinline)) k3 (int) {}', {"k3"}),
    ("__global__ __launch_bounds__(256, 1) void k4(int) {}", {"k4"}),
    ("static __global__ void k5(const __grid_constant__ CUtensorMap m) {}\n__global__ void k6() {}", {"k5", "k6"}),
    ("__device__ void helper(int) {}\nvoid host(int) {}", set()),
])
def test_kernel_names(src, names):
    assert kernel_names(src) == names
