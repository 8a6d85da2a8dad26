"""gpumatch: GPU-accelerated probabilistic cross-matching of astronomical catalogues.

Stages (one module each): ``io`` (reading catalogues), ``catalogue`` (validated
in-memory catalogue), ``sky`` (grid-hashed neighbour search), ``simulate``
(synthetic fields with known truth), ``filters`` (selection with recorded reasons),
``onesided`` (the notebook's shift-trial / P_i method), ``auf``, ``hankel``,
``islands``, ``photometry``, ``assign`` (Wilson & Naylor 2018 symmetric matching).
The array backend (NumPy or CuPy) is chosen by :func:`gpumatch.backend.get_backend`.
"""
__version__ = "0.1.0"
