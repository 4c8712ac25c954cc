"""Every star rating and comparison, with its melodies and rater, as CSV or JSON Lines.

CSV cells that a spreadsheet would read as a formula (text starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return, e.g. a rater named ``=HYPERLINK(...)``) get a
leading apostrophe, as spreadsheets expect; JSON Lines keep every value as stored.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.store import EXPORT_COLUMNS, FeedbackStore

EXPORT_FORMATS = ("csv", "jsonl")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A CSV cell of text starting with one of these is a formula to a spreadsheet."""


def spreadsheet_safe(value: Any) -> Any:
    """``value`` for a CSV cell: text a spreadsheet would run as a formula gets a leading
    apostrophe (shown as text, not run); numbers and other text are unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class ExportError(RLComposerError):
    """An export path or format that cannot be used."""


def format_rows(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """The rows as CSV (a header line, then one line per row) or JSON Lines."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"export format {fmt!r} must be csv or jsonl")
    buffer = io.StringIO()
    if fmt == "csv":
        writer = csv.DictWriter(buffer, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else spreadsheet_safe(row.get(k))) for k in EXPORT_COLUMNS})
    else:
        for row in rows:
            buffer.write(json.dumps({k: row.get(k) for k in EXPORT_COLUMNS}) + "\n")
    return buffer.getvalue()


def export_bytes(store: FeedbackStore, fmt: str, tags: Sequence[str] | None = None,
                 raters: Sequence[str] | None = None) -> bytes:
    """The whole export as bytes (for a download button)."""
    return format_rows(store.export_rows(tags=tags, rater_names=raters), fmt).encode("utf-8")


def check_export_path(path: str | Path, fmt: str | None) -> tuple[Path, str]:
    """Check where an export goes and pick its format (from ``fmt`` or the suffix).

    Raises :class:`ExportError` naming the path: an existing folder, a missing
    parent folder, an unknown suffix without ``fmt``, a suffix that contradicts ``fmt``.
    """
    if str(path).strip() == "":
        raise ExportError("export path is empty")
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"export path '{path}' is a folder, not a file")
    if not path.parent.is_dir():
        raise ExportError(f"export path '{path}': folder '{path.parent}' does not exist")
    suffix_format = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        if suffix_format is None:
            raise ExportError(f"export path '{path}': give --format csv|jsonl or end the name in .csv / .jsonl")
        fmt = suffix_format
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"export format {fmt!r} must be csv or jsonl")
    if suffix_format is not None and suffix_format != fmt:
        raise ExportError(f"export path '{path}' ends in {path.suffix} but the format is {fmt}")
    return path, fmt


def export_ratings(store: FeedbackStore, path: str | Path, fmt: str | None = None,
                   tags: Sequence[str] | None = None, raters: Sequence[str] | None = None) -> int:
    """Write the export to ``path`` (replaced whole, never half-written); returns the row count."""
    path, fmt = check_export_path(path, fmt)
    rows = store.export_rows(tags=tags, rater_names=raters)
    text = format_rows(rows, fmt)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise ExportError(f"export path '{path}': {error.strerror}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ExportError(f"export path '{path}': {error.strerror}") from None
    return len(rows)
