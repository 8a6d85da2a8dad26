// islands_cc.cu -- connected components of the island overlap graph (min-label result).
//
// Grid:    1-D, blockDim 256.  cc_hook: one thread per edge, gridDim ceil(ne / 256);
//          cc_jump: one thread per node, gridDim ceil(n / 256).
// Inputs:  eu, ev (ne) int64 -- edge ends as node numbers (A row, n_a + B row);
//          label (n) int64    -- in/out, initialised to 0..n-1 by the host;
//          changed (1) int32  -- set to 1 by any hook that lowered a label.
// The host loops {changed = 0; cc_hook; cc_jump} until changed stays 0.  The final
// labels (smallest node of each component) do not depend on the order of the atomics.
// NumPy twin: gpumatch/islands.py, connected_components (scipy.sparse.csgraph, then the
// smallest node per component).
#include "islands_cc.cuh"

extern "C" __global__ void cc_hook(const long long* eu, const long long* ev, long long ne,
                                   long long* label, int* changed)
{
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= ne) return;
    if (cc_hook_one(e, eu, ev, label)) *changed = 1;
}

extern "C" __global__ void cc_jump(long long n, long long* label)
{
    const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (x >= n) return;
    cc_jump_one(x, label);
}
