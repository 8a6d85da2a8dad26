"""The CUDA kernel's per-island programme (kernels/assign_dp.cuh), compiled with g++ and run
on the CPU, against the NumPy executor: identical best hypotheses, floats within 1e-12."""
import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from gpumatch.assign_dp import BucketResult, dp_bucket_numpy
from gpumatch.backend import kernel_dir
from hostkernel import build, ptr

HARNESS = r"""
#include "assign_dp.cuh"
#include <vector>
// The kernel's loop, one island at a time, with the kernel's scratch layout.
extern "C" void run_bucket(int s, long long n, const long long* row_ptr, const double* W,
                           double* logK, double* bestw, int* best_choice, double* marg,
                           double* pnone_row, double* pnone_col)
{
    const long long S = 1LL << s;
    std::vector<double> G(row_ptr[n] * S), FV(2 * S);
    std::vector<signed char> choice(row_ptr[n] * S);
    for (long long k = 0; k < n; ++k) {
        const long long r0 = row_ptr[k];
        assign_dp_island(s, row_ptr[k + 1] - r0, W + r0 * s, G.data() + r0 * S,
                         choice.data() + r0 * S, FV.data(), FV.data() + S, logK + k, bestw + k,
                         best_choice + r0, marg + r0 * s, pnone_row + r0, pnone_col + k * s);
    }
}
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build(HARNESS, tmp_path_factory.mktemp("assign_dp"), "assign_dp")


def run_host(lib, s, row_ptr, W) -> BucketResult:
    n, R = len(row_ptr) - 1, row_ptr[-1]
    row_ptr = np.ascontiguousarray(row_ptr, dtype=np.int64)
    W = np.ascontiguousarray(W, dtype=np.float64)
    out = BucketResult(logK=np.empty(n), bestw=np.empty(n), best_choice=np.empty(R, dtype=np.int32),
                       marg=np.empty((R, s)), pnone_row=np.empty(R), pnone_col=np.empty((n, s)))
    lib.run_bucket(ctypes.c_int(s), ctypes.c_longlong(n), ptr(row_ptr), ptr(W), ptr(out.logK),
                   ptr(out.bestw), ptr(out.best_choice), ptr(out.marg), ptr(out.pnone_row),
                   ptr(out.pnone_col))
    return out


def random_bucket(rng, s, n, lmax, density=0.6, ties=False):
    lens = rng.integers(1, lmax + 1, n)
    row_ptr = np.concatenate([[0], np.cumsum(lens)])
    if ties:
        W = rng.integers(-1, 3, (row_ptr[-1], s)).astype(np.float64)
    else:
        W = rng.normal(0.0, 3.0, (row_ptr[-1], s))
    W[rng.random(W.shape) > density] = -np.inf
    return row_ptr, W


def assert_same(host: BucketResult, ref: BucketResult):
    np.testing.assert_array_equal(host.best_choice, ref.best_choice)
    np.testing.assert_array_equal(host.bestw, ref.bestw)
    np.testing.assert_allclose(host.logK, ref.logK, rtol=1e-12, atol=1e-12)
    for f in ("marg", "pnone_row", "pnone_col"):
        np.testing.assert_allclose(getattr(host, f), getattr(ref, f), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("s", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("ties", [False, True])
def test_host_kernel_equals_numpy(lib, rng, s, ties):
    row_ptr, W = random_bucket(rng, s, 60, 25, ties=ties)
    assert_same(run_host(lib, s, row_ptr, W), dp_bucket_numpy(s, row_ptr, W))


def test_host_kernel_wide_island(lib, rng):
    row_ptr = np.array([0, 200])
    W = rng.normal(-1.0, 3.0, (200, 12))
    W[rng.random(W.shape) > 0.5] = -np.inf
    assert_same(run_host(lib, 12, row_ptr, W), dp_bucket_numpy(12, row_ptr, W))


def test_host_kernel_extreme_weights(lib, rng):
    row_ptr, W = random_bucket(rng, 4, 30, 10)
    W = np.where(np.isfinite(W), W * 150.0, W)
    W[:, 0] = -np.inf                    # a column that can never match
    assert_same(run_host(lib, 4, row_ptr, W), dp_bucket_numpy(4, row_ptr, W))


# The .cu file itself, run on the CPU: CUDA's thread model emulated with std::thread (one
# block at a time, its threads real threads, __syncthreads a barrier, __shared__ static).
EMULATOR = r"""
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
struct Dim3 { unsigned int x = 0, y = 0, z = 0; };
static thread_local Dim3 threadIdx;
static Dim3 blockIdx, blockDim;
struct Barrier {
    std::mutex mu; std::condition_variable cv; int n, count = 0; long gen = 0;
    void wait() {
        std::unique_lock<std::mutex> lk(mu);
        const long g = gen;
        if (++count == n) { count = 0; ++gen; cv.notify_all(); }
        else cv.wait(lk, [&] { return gen != g; });
    }
};
static Barrier g_barrier;
inline void __syncthreads() { g_barrier.wait(); }
#define __global__
#define __device__
#define __shared__ static
#include "assign_dp.cu"

#define ARGS int s, long long n, const long long* rp, const double* W, double* G, \
    signed char* ch, double* FV, double* logK, double* bestw, int* bc, double* marg, \
    double* pr, double* pc
#define PASS s, n, rp, W, G, ch, FV, logK, bestw, bc, marg, pr, pc
extern "C" void launch(int per_block, unsigned int grid, unsigned int block, ARGS)
{
    blockDim.x = block;
    g_barrier.n = (int)block;
    for (unsigned int b = 0; b < grid; ++b) {
        blockIdx.x = b;
        if (!per_block) {               // no barriers: threads one after another
            for (unsigned int t = 0; t < block; ++t) { threadIdx.x = t; assign_dp(PASS); }
            continue;
        }
        std::vector<std::thread> threads;
        for (unsigned int t = 0; t < block; ++t)
            threads.emplace_back([=] { threadIdx.x = t; assign_dp_block(PASS); });
        for (auto& th : threads) th.join();
    }
}
"""


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    return build(EMULATOR, tmp_path_factory.mktemp("assign_dp_emu"), "assign_dp_emu")


def run_emulated(lib, s, row_ptr, W, per_block, block):
    """Launch a kernel of assign_dp.cu as dp_bucket_cupy does, on emulated threads."""
    n, R, S = len(row_ptr) - 1, row_ptr[-1], 1 << s
    row_ptr = np.ascontiguousarray(row_ptr, dtype=np.int64)
    W = np.ascontiguousarray(W, dtype=np.float64)
    G, ch, FV = np.empty(R * S), np.empty(R * S, dtype=np.int8), np.empty(4 * n * S)
    out = BucketResult(logK=np.empty(n), bestw=np.empty(n), best_choice=np.empty(R, dtype=np.int32),
                       marg=np.empty((R, s)), pnone_row=np.empty(R), pnone_col=np.empty((n, s)))
    grid = n if per_block else (n + block - 1) // block
    lib.launch(ctypes.c_int(per_block), ctypes.c_uint(grid), ctypes.c_uint(block), ctypes.c_int(s),
               ctypes.c_longlong(n), ptr(row_ptr), ptr(W), ptr(G), ptr(ch), ptr(FV), ptr(out.logK),
               ptr(out.bestw), ptr(out.best_choice), ptr(out.marg), ptr(out.pnone_row),
               ptr(out.pnone_col))
    return out


@pytest.mark.parametrize("s,block", [(1, 2), (3, 8), (5, 4), (6, 32), (8, 16)])
def test_emulated_block_kernel_equals_numpy(emulated, rng, s, block):
    row_ptr, W = random_bucket(rng, s, 6, 12, ties=bool(s % 2))
    assert_same(run_emulated(emulated, s, row_ptr, W, True, block), dp_bucket_numpy(s, row_ptr, W))


def test_emulated_thread_kernel_equals_numpy(emulated, rng):
    row_ptr, W = random_bucket(rng, 3, 300, 20, ties=True)
    assert_same(run_emulated(emulated, 3, row_ptr, W, False, 128), dp_bucket_numpy(3, row_ptr, W))


def test_kernel_compiles_to_ptx(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not available")
    kdir = kernel_dir()
    subprocess.run([nvcc, "--ptx", "--std=c++14", "--fmad=false", "-arch=sm_80", f"-I{kdir}",
                    "-o", str(tmp_path / "assign_dp.ptx"), str(kdir / "assign_dp.cu")],
                   check=True, capture_output=True, text=True)


@pytest.mark.parametrize("block_min_s", [1, 7, 30])
def test_cuda_kernels_equal_numpy(gpu_backend, rng, block_min_s):
    """Both CUDA kernels (one thread per island, one block per island) against NumPy."""
    from gpumatch.assign_dp import dp_bucket_cupy

    for s, n, lmax, ties in [(1, 200, 30, False), (3, 300, 40, True), (4, 500, 127, False),
                             (7, 40, 60, True), (9, 20, 50, False)]:
        row_ptr, W = random_bucket(rng, s, n, lmax, ties=ties)
        assert_same(dp_bucket_cupy(s, row_ptr, W, block_min_s=block_min_s),
                    dp_bucket_numpy(s, row_ptr, W))
    W = rng.normal(-1.0, 3.0, (200, 12))
    W[rng.random(W.shape) > 0.5] = -np.inf
    row_ptr = np.array([0, 200])
    assert_same(dp_bucket_cupy(12, row_ptr, W, block_min_s=block_min_s),
                dp_bucket_numpy(12, row_ptr, W))
