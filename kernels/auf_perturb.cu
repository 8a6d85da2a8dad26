// auf_perturb.cu -- Monte Carlo of blended contaminants for the AUF perturbation term.
//
// Grid:    1-D, one thread per realisation; thread g handles cell g / n_real, realisation
//          g % n_real.  blockDim 128.
// Inputs:  keys (n_cells) uint64  -- per-cell RNG keys (host);
//          cdf (n_cells, n_steps, kp) float64 -- Poisson CDF tables (host);
//          step_flux (n_steps) float64; the AufParams fields as scalars.
// Outputs: off_fw, off_psf (n_cells * n_real) float64 arcsec; n_cont, contaminated int32;
//          flux float64 (total relative contaminant flux).
// Per-thread logic: auf_perturb.cuh (auf_simulate_one); NumPy twin gpumatch/auf.py
// (simulate_offsets_numpy), bit-identical when compiled with --fmad=false.
#include "auf_perturb.cuh"

extern "C" __global__ void auf_simulate(
    const unsigned long long* keys, const double* cdf, const double* step_flux,
    int n_steps, int kp, int max_iter, double radius, double kflux, double inv4s2, double fcut,
    double tol2, long long n_cells, long long n_real,
    double* off_fw, double* off_psf, int* n_cont, int* contaminated, double* flux)
{
    const long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n_cells * n_real) return;
    AufParams p;
    p.n_steps = n_steps; p.kp = kp; p.max_iter = max_iter; p.radius = radius; p.kflux = kflux;
    p.inv4s2 = inv4s2; p.fcut = fcut; p.tol2 = tol2;
    const long long cell = g / n_real;
    const long long i = g - cell * n_real;
    double cx[AUF_MAXC], cy[AUF_MAXC], cf[AUF_MAXC];
    auf_simulate_one(keys[cell], (unsigned long long)i, p,
                     cdf + cell * (long long)p.n_steps * p.kp, step_flux, cx, cy, cf,
                     off_fw + g, off_psf + g, n_cont + g, contaminated + g, flux + g);
}
