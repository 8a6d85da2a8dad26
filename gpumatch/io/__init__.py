"""Reading catalogues into :class:`~gpumatch.catalogue.Catalogue` and writing result tables.

* :func:`read_catalogue` -- CSV/TSV, VizieR semicolon TSV, FITS, Parquet and
  VOTable files; several files (tiles) concatenated in order; big files read in
  chunks within a memory budget; columns mapped by :class:`ColumnMap`.
* :func:`write_table` / :func:`read_table` / :func:`read_table_meta` -- FITS,
  Parquet or CSV output carrying provenance metadata.
"""
from .columns import DEFAULT_MISSING, ColumnMap
from .formats import FORMATS, detect_format
from .readers import DEFAULT_MEMORY_BUDGET_MB, read_catalogue
from .writers import jsonable, read_table, read_table_meta, write_table

__all__ = ["jsonable", "ColumnMap", "DEFAULT_MISSING", "DEFAULT_MEMORY_BUDGET_MB", "FORMATS", "detect_format",
           "read_catalogue", "read_table", "read_table_meta", "write_table"]
