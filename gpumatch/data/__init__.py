"""Data files shipped with gpumatch: the example configs used by gpumatch demo."""
