"""The project's CSV tables: one way to write them (atomically, ``\\n`` line ends, empty cells for missing values)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from neonet_ext.utils.io import atomic_write

__all__ = ["csv_text", "write_csv"]


def _cell(value: Any, float_format: str) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return float_format.format(value)
    return value


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], float_format: str = "{:.6f}") -> str:
    """CSV text with a header of ``columns`` and one line per row.

    A row's keys outside ``columns`` are left out and missing ones give empty cells; None and NaN
    give empty cells; floats are written with ``float_format`` (strings are written as they are, so a
    column that needs another precision is formatted by the caller).
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c), float_format) for c in columns})
    return buffer.getvalue()


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any]],
              float_format: str = "{:.6f}") -> Path:
    """Write :func:`csv_text` to ``path`` atomically (a reader sees the old table or the new one); return ``path``."""
    text = csv_text(columns, rows, float_format)
    return atomic_write(path, lambda tmp: tmp.write_text(text))
