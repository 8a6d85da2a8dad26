// sky_pairs.cuh -- per-query work of the grid-hashed neighbour search.
//
// One query (a source of catalogue A, or a shifted copy of one) scans NR = 6 ranges
// [start, end) of positions in the cell-sorted catalogue B: for each of the (at most 3)
// declination zones its circle meets, the cells of its RA window and the wrap-around
// piece of that window at RA = 0/360 (empty ranges have start == end).
// A pair (q, j) is kept when the squared chord between the unit vectors is at most
// qthr2[q] + bthr2[j] (chord-space squared radii, computed on the host as
// (2 sin(r/2))^2; bthr2 is all zeros for a radius that depends on A alone).
//
// The arithmetic is written in the same order as the NumPy reference
// (gpumatch/sky.py: _expand_numpy) -- d2 = dx*dx + dy*dy + dz*dz, thr = qthr2 + bthr2 --
// and the .cu file is compiled with --fmad=false, so both give bit-identical d2 and
// identical keep/drop decisions.
//
// This header is plain C++ apart from the qualifiers, so tests compile it with g++
// (GPUMATCH_HD defined empty) and call it over all query indices from ctypes.
#pragma once

#ifndef GPUMATCH_HD
#define GPUMATCH_HD __host__ __device__
#endif

#define SKY_NRANGES 6  // = gpumatch.sky.NR

// Count the kept pairs of query q.
GPUMATCH_HD inline long long sky_count_one(
    long long q, const long long* ranges, const double* qxyz, const double* bxyz,
    const double* qthr2, const double* bthr2)
{
    const double qx = qxyz[3 * q], qy = qxyz[3 * q + 1], qz = qxyz[3 * q + 2];
    const double t = qthr2[q];
    long long n = 0;
    for (int r = 0; r < SKY_NRANGES; ++r) {
        const long long s = ranges[2 * (SKY_NRANGES * q + r)];
        const long long e = ranges[2 * (SKY_NRANGES * q + r) + 1];
        for (long long j = s; j < e; ++j) {
            const double dx = qx - bxyz[3 * j];
            const double dy = qy - bxyz[3 * j + 1];
            const double dz = qz - bxyz[3 * j + 2];
            const double d2 = dx * dx + dy * dy + dz * dz;
            if (d2 <= t + bthr2[j]) ++n;
        }
    }
    return n;
}

// Write the kept pairs of query q from position out0 on, in range order:
// out_q[k] = q, out_j[k] = sorted-B position j, out_d2[k] = squared chord.
GPUMATCH_HD inline void sky_write_one(
    long long q, const long long* ranges, const double* qxyz, const double* bxyz,
    const double* qthr2, const double* bthr2, long long out0,
    long long* out_q, long long* out_j, double* out_d2)
{
    const double qx = qxyz[3 * q], qy = qxyz[3 * q + 1], qz = qxyz[3 * q + 2];
    const double t = qthr2[q];
    long long k = out0;
    for (int r = 0; r < SKY_NRANGES; ++r) {
        const long long s = ranges[2 * (SKY_NRANGES * q + r)];
        const long long e = ranges[2 * (SKY_NRANGES * q + r) + 1];
        for (long long j = s; j < e; ++j) {
            const double dx = qx - bxyz[3 * j];
            const double dy = qy - bxyz[3 * j + 1];
            const double dz = qz - bxyz[3 * j + 2];
            const double d2 = dx * dx + dy * dy + dz * dz;
            if (d2 <= t + bthr2[j]) {
                out_q[k] = q;
                out_j[k] = j;
                out_d2[k] = d2;
                ++k;
            }
        }
    }
}
