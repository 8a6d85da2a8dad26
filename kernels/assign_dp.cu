// assign_dp.cu -- counterpart assignment: the subset dynamic programme on the GPU.
//
// Two kernels over a bucket of islands that share the small side s (columns); island k owns
// the rows row_ptr[k] .. row_ptr[k+1] (its large-side sources, l_k >= 1).  The host sorts
// the islands of a bucket by l, descending, so neighbouring threads/blocks do similar work.
//
// assign_dp       one thread per island (small s): blockDim 128, gridDim ceil(n_isl / 128);
//                 the thread runs assign_dp_island (assign_dp.cuh) on its island.
// assign_dp_block one block per island (large s): blockDim min(256, 2^s) (a power of two),
//                 gridDim n_isl; the threads share the 2^s states of every step (ping-pong
//                 buffers, a barrier per step) and block-reduce the sums over states.  Each
//                 state's terms are the same assign_lse_term / assign_max_term calls as in
//                 the one-thread version, so the best hypothesis is identical; only the
//                 order of the positive sums over states (marginals) differs.
//
// Inputs:  s, n_isl; row_ptr (n_isl + 1) int64; W (R, s) float64 ln r, -inf = cannot match.
// Scratch: G (R * 2^s) float64, choice (R * 2^s) int8 (island k at row_ptr[k] * 2^s);
//          FV (n_isl * 4 * 2^s) float64.
// Outputs: logK (n_isl), bestw (n_isl) float64; best_choice (R) int32 (column or -1);
//          marg (R, s), pnone_row (R), pnone_col (n_isl, s) float64.
// NumPy twin: gpumatch/assign_dp.py (_dp_chunk_numpy).  Compiled with --fmad=false so the
// additions feeding the best-hypothesis decisions round exactly as in NumPy.
#include "assign_dp.cuh"

extern "C" __global__ void assign_dp(
    int s, long long n_isl, const long long* row_ptr, const double* W,
    double* G, signed char* choice, double* FV,
    double* logK, double* bestw, int* best_choice, double* marg, double* pnone_row,
    double* pnone_col)
{
    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n_isl) return;
    const long long S = 1LL << s;
    const long long r0 = row_ptr[k];
    const long long l = row_ptr[k + 1] - r0;
    assign_dp_island(s, l, W + r0 * s, G + r0 * S, choice + r0 * S, FV + 4 * k * S,
                     FV + (4 * k + 1) * S, logK + k, bestw + k, best_choice + r0,
                     marg + r0 * s, pnone_row + r0, pnone_col + k * s);
}

#define ASSIGN_BLOCK_MAX 256

// Sum of v over the block (blockDim a power of two); every thread gets the result.
__device__ inline double assign_block_sum(double v, double* red)
{
    red[threadIdx.x] = v;
    __syncthreads();
    for (unsigned int h = blockDim.x >> 1; h > 0; h >>= 1) {
        if (threadIdx.x < h) red[threadIdx.x] += red[threadIdx.x + h];
        __syncthreads();
    }
    const double r = red[0];
    __syncthreads();
    return r;
}

extern "C" __global__ void assign_dp_block(
    int s, long long n_isl, const long long* row_ptr, const double* W,
    double* G, signed char* choice, double* FV,
    double* logK_out, double* bestw, int* best_choice, double* marg, double* pnone_row,
    double* pnone_col)
{
    __shared__ double red[ASSIGN_BLOCK_MAX];
    __shared__ unsigned int redm[ASSIGN_BLOCK_MAX];
    const long long k = blockIdx.x;
    if (k >= n_isl) return;                       // uniform over the block
    const double NEG = assign_neg_inf();
    const unsigned int S = 1u << s;
    const unsigned int tid = threadIdx.x, nt = blockDim.x;
    const long long r0 = row_ptr[k];
    const long long l = row_ptr[k + 1] - r0;
    const double* Wk = W + r0 * s;
    double* Gk = G + r0 * (long long)S;
    signed char* ch = choice + r0 * (long long)S;
    double* F0 = FV + 4 * k * (long long)S;
    double* F1 = F0 + S;
    double* V0 = F1 + S;
    double* V1 = V0 + S;

    // Backward sweep: G_j at Gk + (j-1)*S, G_l = 0.
    for (unsigned int m = tid; m < S; m += nt) Gk[(l - 1) * S + m] = 0.0;
    __syncthreads();
    for (long long j = l - 1; j >= 1; --j) {
        const double* Gn = Gk + j * S;
        double* Gc = Gk + (j - 1) * S;
        for (unsigned int m = tid; m < S; m += nt) Gc[m] = assign_lse_term(Gn, Wk + j * s, s, m, 0);
        __syncthreads();
    }
    const double logK = assign_lse_term(Gk, Wk, s, 0u, 0);
    if (tid == 0) logK_out[k] = logK;

    for (unsigned int m = tid; m < S; m += nt) {
        F0[m] = m == 0 ? 0.0 : NEG;
        V0[m] = F0[m];
    }
    __syncthreads();
    for (long long j = 0; j < l; ++j) {
        const double* w = Wk + j * s;
        const double* Gn = Gk + j * S;          // G_{j+1}
        for (int i = 0; i < s; ++i) {
            const unsigned int b = 1u << i;
            double acc = 0.0;
            if (w[i] != NEG)
                for (unsigned int m = tid; m < S; m += nt)
                    if (!(m & b)) acc += exp(F0[m] + w[i] + Gn[m | b] - logK);
            acc = assign_block_sum(acc, red);
            if (tid == 0) marg[(r0 + j) * s + i] = acc;
        }
        double acc = 0.0;
        for (unsigned int m = tid; m < S; m += nt) acc += exp(F0[m] + Gn[m] - logK);
        acc = assign_block_sum(acc, red);
        if (tid == 0) pnone_row[r0 + j] = acc;
        for (unsigned int m = tid; m < S; m += nt) {
            int c;
            F1[m] = assign_lse_term(F0, w, s, m, 1);
            V1[m] = assign_max_term(V0, w, s, m, &c);
            ch[j * S + m] = (signed char)c;
        }
        __syncthreads();
        double* t = F0; F0 = F1; F1 = t;
        t = V0; V0 = V1; V1 = t;
    }
    for (int i = 0; i < s; ++i) {
        const unsigned int b = 1u << i;
        double acc = 0.0;
        for (unsigned int m = tid; m < S; m += nt)
            if (!(m & b)) acc += exp(F0[m] - logK);
        acc = assign_block_sum(acc, red);
        if (tid == 0) pnone_col[k * s + i] = acc;
    }

    // Lowest mask with the largest V_l: per thread (masks ascending), then a tree reduction.
    unsigned int mb = tid;
    for (unsigned int m = tid + nt; m < S; m += nt)
        if (V0[m] > V0[mb]) mb = m;
    red[tid] = V0[mb];
    redm[tid] = mb;
    __syncthreads();
    for (unsigned int h = nt >> 1; h > 0; h >>= 1) {
        if (tid < h) {
            const double v2 = red[tid + h];
            const unsigned int m2 = redm[tid + h];
            if (v2 > red[tid] || (v2 == red[tid] && m2 < redm[tid])) { red[tid] = v2; redm[tid] = m2; }
        }
        __syncthreads();
    }
    if (tid == 0) {
        unsigned int m = redm[0];
        bestw[k] = red[0];
        for (long long j = l - 1; j >= 0; --j) {
            const int c = ch[j * S + m];
            best_choice[r0 + j] = c;
            if (c >= 0) m ^= 1u << c;
        }
    }
}
