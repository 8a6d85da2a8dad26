// islands_cc.cuh -- per-thread work of connected components by hooking and pointer jumping.
//
// Nodes are 0..n-1 (A rows, then B rows offset by n_a); label[x] starts at x.
// One round is a hook pass over the edges followed by a jump pass over the nodes,
// repeated until a hook pass changes nothing:
//
//   hook (one thread per edge (u, v)):  lu = label[u], lv = label[v]; when they differ,
//        label[max(lu, lv)] = min(label[max(lu, lv)], min(lu, lv))   (atomic min on the GPU);
//   jump (one thread per node x):       label[x] = label[label[x]] until label[x] is a root.
//
// Invariants: a label only ever decreases, and label[x] is always a node of x's component
// (hi and lo are labels of the two ends of one edge).  At the fixed point every edge has
// equal labels and every label is a root, so each component carries one label; its
// smallest node m can never be hooked below itself, so that label is m.  The result is
// therefore the same whatever order the atomics resolve in: the smallest node index of
// each component, identical to the NumPy path (gpumatch/islands.py: connected_components).
//
// Plain C++ apart from the qualifiers and the atomic: tests compile it with g++
// (GPUMATCH_HD defined empty), where the atomic is an ordinary min and the passes run serially.
#pragma once

#ifndef GPUMATCH_HD
#define GPUMATCH_HD __host__ __device__
#endif

// label[p] = min(label[p], v); returns the previous value.
GPUMATCH_HD inline long long cc_atomic_min(long long* label, long long p, long long v)
{
#ifdef __CUDA_ARCH__
    // Labels are non-negative, so the unsigned 64-bit atomic orders them correctly.
    return (long long)atomicMin((unsigned long long*)(label + p), (unsigned long long)v);
#else
    const long long old = label[p];
    if (v < old) label[p] = v;
    return old;
#endif
}

// Hook edge e; returns 1 when it lowered a label, else 0.
GPUMATCH_HD inline int cc_hook_one(long long e, const long long* eu, const long long* ev,
                                   long long* label)
{
    const long long lu = label[eu[e]];
    const long long lv = label[ev[e]];
    if (lu == lv) return 0;
    const long long hi = lu > lv ? lu : lv;
    const long long lo = lu > lv ? lv : lu;
    return cc_atomic_min(label, hi, lo) > lo ? 1 : 0;
}

// Compress node x's label to the root it currently leads to.
GPUMATCH_HD inline void cc_jump_one(long long x, long long* label)
{
    long long p = label[x];
    long long pp = label[p];
    while (pp != p) {
        p = pp;
        pp = label[p];
    }
    label[x] = p;
}
