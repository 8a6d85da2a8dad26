// sky_pairs.cu -- grid-hashed neighbour search, count and write passes.
//
// Grid:    1-D, one thread per query; blockDim 256, gridDim ceil(nq / 256).
// Inputs:  ranges (nq, 6, 2) int64  -- [start, end) positions in cell-sorted B;
//          qxyz (nq, 3) float64      -- query unit vectors (computed on the host);
//          bxyz (nb, 3) float64      -- B unit vectors in cell-sorted order;
//          qthr2 (nq) float64, bthr2 (nb) float64 -- chord-space squared radii.
// sky_count: counts (nq) int64 kept pairs per query.
// sky_write: offsets (nq) int64 = exclusive scan of counts; writes out_q, out_j
//            (sorted-B positions) and out_d2 (squared chord) in range order.
// The order within a query is fixed by the ranges, never by atomics.
// NumPy twin: gpumatch/sky.py, _expand_numpy (same arithmetic order; build with --fmad=false).
#include "sky_pairs.cuh"

extern "C" __global__ void sky_count(
    const long long* ranges, const double* qxyz, const double* bxyz,
    const double* qthr2, const double* bthr2, long long nq, long long* counts)
{
    const long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= nq) return;
    counts[q] = sky_count_one(q, ranges, qxyz, bxyz, qthr2, bthr2);
}

extern "C" __global__ void sky_write(
    const long long* ranges, const double* qxyz, const double* bxyz,
    const double* qthr2, const double* bthr2, long long nq, const long long* offsets,
    long long* out_q, long long* out_j, double* out_d2)
{
    const long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= nq) return;
    sky_write_one(q, ranges, qxyz, bxyz, qthr2, bthr2, offsets[q], out_q, out_j, out_d2);
}
