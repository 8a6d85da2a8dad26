// auf_perturb.cuh -- one Monte Carlo realisation of faint sources blended with a central one.
//
// The central source (relative flux 1) sits at the origin of a "PSF circle" of radius R
// (arcsec).  For magnitude steps s = 0 .. n_steps-1 below it (offsets [s dm, (s+1) dm)),
// a Poisson number of contaminants is drawn (inverse CDF table, computed on the host),
// each placed uniformly in the circle (rejection from the square) with relative flux
// step_flux[s] * exp(-kflux u), u uniform (magnitude uniform within the step).
// Two centroid models give the offset of the measured position:
//   * flux-weighted centre of light: (sum f_k x_k) / (1 + sum f_k)  (all contaminants);
//   * PSF fit (after Plewa & Sari 2018): the least-squares position of one Gaussian PSF
//     (sigma_psf) fitted to the blend, i.e. the maximum of
//     C(x) = exp(-|x|^2/4s^2) + sum f_k exp(-|x-x_k|^2/4s^2), found by the fixed-point
//     (mean-shift) iteration x <- sum w_k x_k / sum w_k from x = 0 (the central source),
//     at most max_iter steps, stopping when the squared step is <= tol2.  It uses the first
//     AUF_MAXC contaminants (the brightest steps come first).
//
// Random numbers: a counter-based generator (SplitMix64 finaliser of key + counter *
// golden gamma), one independent uniform per (realisation i, step s, contaminant j,
// attempt a, draw d); the cell's key is computed on the host.  exp(-x) is evaluated by
// auf_exp_neg with +,-,*,/ and exact frexp/ldexp only.  With --fmad=false (nvcc) and
// -ffp-contract=off (g++), this header and the NumPy twin (gpumatch/auf.py,
// simulate_offsets_numpy) produce bit-identical results.
#pragma once

#ifndef GPUMATCH_HD
#define GPUMATCH_HD __host__ __device__
#endif

#define AUF_MAXC 256          // contaminants kept for the PSF-fit model
#define AUF_NSTEP_MAX 1024    // counter layout: steps < 1024
#define AUF_J_MAX 256         //                 contaminants per step < 256
#define AUF_ATTEMPTS 32       //                 rejection attempts < 32
#define AUF_GAMMA 0x9E3779B97F4A7C15ULL

GPUMATCH_HD inline unsigned long long auf_mix64(unsigned long long z)
{
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z;
}

// Uniform double in [0, 1) with 53 random bits for draw d of (i, s, j, a).
GPUMATCH_HD inline double auf_uniform(unsigned long long key, unsigned long long i, int s, int j,
                                      int a, int d)
{
    const unsigned long long c =
        ((((i * AUF_NSTEP_MAX + (unsigned long long)s) * AUF_J_MAX + (unsigned long long)j)
          * AUF_ATTEMPTS + (unsigned long long)a) * 4ULL) + (unsigned long long)d;
    return (double)(auf_mix64(key + c * AUF_GAMMA) >> 11) * 1.1102230246251565e-16;  // 2^-53
}

// exp(-x) for x >= 0: scale to y = x 2^-n <= 1/16, Taylor series (12 terms, Horner), square n times.
GPUMATCH_HD inline double auf_exp_neg(double x)
{
    int e;
    frexp(x * 16.0, &e);
    const int n = e > 0 ? e : 0;
    const double y = ldexp(x, -n);
    double p = 1.0;
    for (int k = 12; k >= 1; --k) p = 1.0 - y * p / (double)k;
    for (int t = 0; t < n; ++t) p = p * p;
    return p;
}

struct AufParams {
    int n_steps;          // magnitude steps
    int kp;               // Poisson table width (counts 0 .. kp-1)
    int max_iter;         // PSF-fit iterations
    double radius;        // PSF circle radius R (arcsec)
    double kflux;         // 0.4 ln(10) dm
    double inv4s2;        // 1 / (4 sigma_psf^2)  (arcsec^-2)
    double fcut;          // relative flux above which a realisation counts as contaminated
    double tol2;          // squared step (arcsec^2) that ends the PSF-fit iteration
};

// Simulate realisation i of a cell.  cdf: this cell's (n_steps, kp) Poisson CDF table;
// step_flux: (n_steps) relative flux at the bright edge of each step; cx, cy, cf: scratch of
// AUF_MAXC doubles.  Outputs: offsets of the two models (arcsec), number of contaminants,
// contaminated flag (a contaminant brighter than fcut), total relative contaminant flux.
GPUMATCH_HD inline void auf_simulate_one(
    unsigned long long key, unsigned long long i, const AufParams& p, const double* cdf,
    const double* step_flux, double* cx, double* cy, double* cf,
    double* off_fw, double* off_psf, int* n_cont, int* contaminated, double* flux)
{
    double sx = 0.0, sy = 0.0, sf = 0.0;
    int nc = 0, ntot = 0, flag = 0;
    for (int s = 0; s < p.n_steps; ++s) {
        const double u = auf_uniform(key, i, s, 0, 0, 3);
        const double* c = cdf + (long long)s * p.kp;
        int k = 0;
        while (k < p.kp - 1 && u >= c[k]) ++k;
        for (int j = 0; j < k; ++j) {
            double x = 0.0, y = 0.0;
            int ok = 0;
            for (int a = 0; a < AUF_ATTEMPTS; ++a) {
                x = 2.0 * auf_uniform(key, i, s, j, a, 0) - 1.0;
                y = 2.0 * auf_uniform(key, i, s, j, a, 1) - 1.0;
                if (x * x + y * y <= 1.0) { ok = 1; break; }
            }
            if (!ok) { x = x * 0.5; y = y * 0.5; }
            x = x * p.radius;
            y = y * p.radius;
            const double f = step_flux[s] * auf_exp_neg(p.kflux * auf_uniform(key, i, s, j, 0, 2));
            sx = sx + f * x;
            sy = sy + f * y;
            sf = sf + f;
            if (f > p.fcut) flag = 1;
            if (nc < AUF_MAXC) { cx[nc] = x; cy[nc] = y; cf[nc] = f; ++nc; }
            ++ntot;
        }
    }
    const double xf = sx / (1.0 + sf);
    const double yf = sy / (1.0 + sf);
    *off_fw = sqrt(xf * xf + yf * yf);
    double x = 0.0, y = 0.0;
    if (nc > 0) {
        for (int it = 0; it < p.max_iter; ++it) {
            double den = auf_exp_neg((x * x + y * y) * p.inv4s2);
            double nx = 0.0, ny = 0.0;
            for (int k = 0; k < nc; ++k) {
                const double dx = x - cx[k];
                const double dy = y - cy[k];
                const double w = cf[k] * auf_exp_neg((dx * dx + dy * dy) * p.inv4s2);
                den = den + w;
                nx = nx + w * cx[k];
                ny = ny + w * cy[k];
            }
            const double xn = nx / den;
            const double yn = ny / den;
            const double d2 = (xn - x) * (xn - x) + (yn - y) * (yn - y);
            x = xn;
            y = yn;
            if (d2 <= p.tol2) break;
        }
    }
    *off_psf = sqrt(x * x + y * y);
    *n_cont = ntot;
    *contaminated = flag;
    *flux = sf;
}
