// assign_dp.cuh -- exact counterpart assignment in one island: the subset dynamic programme.
//
// An island has s "small-side" sources (columns, s <= 20) and l "large-side" sources
// (rows).  W[j*s + i] = ln r_ji is the log pair weight of row j and column i, -inf where the
// pair cannot match.  The evidence ratio K (Wilson & Naylor 2018 eq 27 divided by the
// all-unmatched hypothesis) is the sum over partial matchings of the product of r.
//
// Rows are swept one by one; the state is the set (bitmask, 2^s states) of columns used so far.
//   F_j[m]  = ln sum over matchings of rows < j using exactly the columns m      (forward)
//   G_j[m]  = ln sum over matchings of rows >= j avoiding the columns m          (backward)
//   F_{j+1}[m] = LSE(F_j[m], F_j[m ^ bit_i] + W[j,i] for i in m)
//   G_j[m]     = LSE(G_{j+1}[m], G_{j+1}[m | bit_i] + W[j,i] for i not in m)
//   ln K = G_0[0];  P(j~i) = sum_{m not containing i} exp(F_j[m] + W[j,i] + G_{j+1}[m|bit_i] - ln K)
//   P(row j unmatched) = sum_m exp(F_j[m] + G_{j+1}[m] - ln K)
//   P(column i unmatched) = sum_{m not containing i} exp(F_l[m] - ln K)
// LSE(t_0, t_1, ...) with t_0 the "unmatched" term and t_{1+i} in increasing i: M = the first
// maximal term; result M + log1p(sum of exp(t - M) over the other terms, in that order); -inf
// when every term is -inf.  The most probable hypothesis is the max-product twin V of F: at
// each (j, m) the first strictly larger term wins (unmatched first, then lowest column), the
// final state is the lowest mask with the largest V, and the rows' choices are backtracked.
//
// NumPy twin: gpumatch/assign_dp.py (_dp_chunk_numpy).  It evaluates the same terms with the
// same operation order, so the discrete outputs (best hypothesis) are identical and the
// floats agree to rounding of exp/log/log1p (the sums over masks may be ordered differently).
// Compile with --fmad=false.  Plain C++ apart from GPUMATCH_HD, so tests build it with g++.
#pragma once

#ifndef GPUMATCH_HD
#define GPUMATCH_HD __host__ __device__
#endif

#if !defined(__CUDACC_RTC__) && !defined(__CUDA_ARCH__)
#include <cmath>
#endif

GPUMATCH_HD inline double assign_neg_inf()
{
#ifdef __CUDA_ARCH__
    return __longlong_as_double((long long)0xfff0000000000000ULL);
#else
    return -HUGE_VAL;
#endif
}

// LSE over the "unmatched" term X[m] and the terms X[m ^ bit_i] + w[i] for every column i
// whose bit is in m (forward, fwd=1) or, for the backward sweep, X[m | bit_i] + w[i] for
// every column i not in m (fwd=0).
GPUMATCH_HD inline double assign_lse_term(const double* X, const double* w, int s, unsigned int m,
                                          int fwd)
{
    const double NEG = assign_neg_inf();
    double M = X[m];
    int am = -1;
    for (int i = 0; i < s; ++i) {
        const unsigned int b = 1u << i;
        if (((m & b) != 0) != (fwd != 0)) continue;
        const double t = X[m ^ b] + w[i];
        if (t > M) { M = t; am = i; }
    }
    if (M == NEG) return NEG;
    double acc = 0.0;
    if (am != -1) acc += exp(X[m] - M);
    for (int i = 0; i < s; ++i) {
        const unsigned int b = 1u << i;
        if (((m & b) != 0) != (fwd != 0)) continue;
        if (i == am) continue;
        acc += exp(X[m ^ b] + w[i] - M);
    }
    return M + log1p(acc);
}

// Max-product twin of the forward term: the largest of V[m] (row unmatched) and
// V[m ^ bit_i] + w[i] for the columns i in m; *c = the winning column, -1 for "unmatched";
// the first strictly larger term wins (unmatched first, then increasing i).
GPUMATCH_HD inline double assign_max_term(const double* V, const double* w, int s, unsigned int m,
                                          int* c)
{
    double best = V[m];
    int cb = -1;
    for (int i = 0; i < s; ++i) {
        const unsigned int b = 1u << i;
        if (!(m & b)) continue;
        const double t = V[m ^ b] + w[i];
        if (t > best) { best = t; cb = i; }
    }
    *c = cb;
    return best;
}

// The whole programme for one island.
// Inputs:  s (columns), l >= 1 (rows), W (l*s) log weights.
// Scratch: G (l * 2^s) doubles -- holds G_1 .. G_l; choice (l * 2^s) signed chars;
//          F, V (2^s) doubles each.
// Outputs: logK, bestw (ln prod r of the most probable hypothesis), best_choice (l): the
//          column matched to each row in that hypothesis or -1; marg (l*s) pair marginals;
//          pnone_row (l), pnone_col (s) probabilities of having no counterpart.
GPUMATCH_HD inline void assign_dp_island(
    int s, long long l, const double* W, double* G, signed char* choice, double* F, double* V,
    double* logK_out, double* bestw_out, int* best_choice, double* marg, double* pnone_row,
    double* pnone_col)
{
    const double NEG = assign_neg_inf();
    const unsigned int S = 1u << s;

    // Backward sweep: G_l = 0, G_j from G_{j+1}; G_j lives at G + (j-1)*S.
    double* Gl = G + (l - 1) * (long long)S;
    for (unsigned int m = 0; m < S; ++m) Gl[m] = 0.0;
    for (long long j = l - 1; j >= 1; --j) {
        const double* Gn = G + j * (long long)S;
        double* Gc = G + (j - 1) * (long long)S;
        for (unsigned int m = 0; m < S; ++m) Gc[m] = assign_lse_term(Gn, W + j * s, s, m, 0);
    }
    const double logK = assign_lse_term(G, W, s, 0u, 0);
    *logK_out = logK;

    // Forward sweep (in place, masks descending: m ^ bit_i < m is still F_j), with marginals.
    for (unsigned int m = 0; m < S; ++m) { F[m] = NEG; V[m] = NEG; }
    F[0] = 0.0;
    V[0] = 0.0;
    for (long long j = 0; j < l; ++j) {
        const double* w = W + j * s;
        const double* Gn = G + j * (long long)S;  // G_{j+1}
        for (int i = 0; i < s; ++i) {
            const unsigned int b = 1u << i;
            double acc = 0.0;
            if (w[i] != NEG) {
                for (unsigned int m = 0; m < S; ++m) {
                    if (m & b) continue;
                    acc += exp(F[m] + w[i] + Gn[m | b] - logK);
                }
            }
            marg[j * s + i] = acc;
        }
        double acc = 0.0;
        for (unsigned int m = 0; m < S; ++m) acc += exp(F[m] + Gn[m] - logK);
        pnone_row[j] = acc;
        signed char* ch = choice + j * (long long)S;
        for (unsigned int m = S; m-- > 0;) {
            int c;
            F[m] = assign_lse_term(F, w, s, m, 1);
            V[m] = assign_max_term(V, w, s, m, &c);
            ch[m] = (signed char)c;
        }
    }
    for (int i = 0; i < s; ++i) {
        const unsigned int b = 1u << i;
        double acc = 0.0;
        for (unsigned int m = 0; m < S; ++m) {
            if (m & b) continue;
            acc += exp(F[m] - logK);
        }
        pnone_col[i] = acc;
    }

    // Most probable hypothesis: lowest mask with the largest V_l, then backtrack.
    unsigned int mbest = 0;
    for (unsigned int m = 1; m < S; ++m)
        if (V[m] > V[mbest]) mbest = m;
    *bestw_out = V[mbest];
    for (long long j = l - 1; j >= 0; --j) {
        const int c = choice[j * (long long)S + mbest];
        best_choice[j] = c;
        if (c >= 0) mbest ^= 1u << c;
    }
}
