"""CUDA kernel sources of gpumatch (shipped as package data gpumatch._kernels)."""
