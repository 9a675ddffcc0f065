"""``segmint ingest``: stream a CSV, JSONL or Parquet file through a mapping into intake.

Files are read incrementally (``csv`` rows, JSON lines, Parquet record batches), never whole.
Each row becomes a message through a :class:`~segmint.intake.mappings.RowMapper`; messages
go to the intake pipeline in batches. A row that cannot be read or mapped is *reported*
(line number and reason, in :attr:`ImportReport.bad_rows`) and the import goes on: the file
is the durable copy of such a row, so it is not quarantined. A row that maps but fails the
pipeline's own validation (the tracking plan) is quarantined by the pipeline, and counted.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow.parquet as pq

from segmint.intake.mappings import BadCell, MappingError, RowError, RowMapper
from segmint.intake.pipeline import Intake

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
MAX_REPORTED = 1000
"""Bad rows kept with their reason in a report; further ones are only counted."""

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Row:
    """One record of an import file, or why it could not be read.

    Attributes:
        line: The 1-based line (CSV, JSONL) or row (Parquet) number where it starts.
        values: Column → value, when the record could be read.
        error: Why it could not, otherwise.
    """

    line: int
    values: dict[str, Any] | None
    error: str | None = None


class RowSource(Protocol):
    """An opened import file: its columns (when known up front), size and rows."""

    columns: Sequence[str] | None
    total: int

    def rows(self, progress: Progress | None) -> Iterator[Row]:
        """Yield the records in order, calling ``progress(units_done)`` now and then."""
        ...


@dataclass
class ImportReport:
    """What an import did.

    Attributes:
        file: The file read.
        mapping: The mapping used.
        source: The source recorded on the events.
        rows: Records read (good and bad).
        submitted: Rows mapped into messages and handed to the pipeline.
        stored: Messages newly stored.
        duplicates: Messages already stored before (a re-run stores nothing twice).
        quarantined: Messages the pipeline quarantined (tracking plan violations).
        bad_rows: The first :data:`MAX_REPORTED` unreadable or unmappable rows.
        bad_row_count: All of them.
        warnings: Problems with the file as a whole, such as a mapped key that no JSON line
            has (a file without a header cannot be checked before reading).
    """

    file: str
    mapping: str
    source: str
    rows: int = 0
    submitted: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    bad_rows: list[dict[str, Any]] = field(default_factory=list)
    bad_row_count: int = 0
    warnings: list[str] = field(default_factory=list)

    def bad(
        self, line: int, reason: str, column: str | None = None, cells: Sequence[BadCell] = ()
    ) -> None:
        """Record one bad row: ``reason`` in words, and each bad cell (column, value, reason)."""
        self.bad_row_count += 1
        if len(self.bad_rows) < MAX_REPORTED:
            self.bad_rows.append(
                {"line": line, "reason": reason, "column": column,
                 "cells": [c.as_dict() for c in cells]}
            )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data, for ``--format json``."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The file's format: ``fmt`` if given, else from the extension.

    Raises:
        MappingError: If the format is not one segmint reads.
    """
    found = fmt or FORMATS.get(path.suffix.lower())
    if found not in set(FORMATS.values()):
        raise MappingError(
            f"cannot tell the format of {path.name}: use a .csv, .jsonl or .parquet file, "
            "or pass --input-format"
        )
    return found


def open_rows(path: Path, fmt: str | None = None, *, delimiter: str = ",") -> RowSource:
    """Open ``path`` for streaming reads in its format.

    Raises:
        MappingError: If the file is missing or its format unknown.
    """
    kind = detect_format(path, fmt)
    if not path.is_file():
        raise MappingError(f"{path} does not exist or is not a file")
    if kind == "csv":
        return CsvSource(path, delimiter)
    if kind == "jsonl":
        return JsonlSource(path)
    return ParquetSource(path)


def run_import(
    path: Path,
    mapper: RowMapper,
    intake: Intake,
    *,
    fmt: str | None = None,
    delimiter: str = ",",
    batch_size: int = 500,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``path`` through ``mapper`` into ``sink``.

    Args:
        path: The CSV, JSONL or Parquet file.
        mapper: The compiled mapping.
        intake: The intake pipeline.
        fmt: The format, when the extension does not tell it.
        delimiter: The CSV field separator.
        batch_size: Messages per ``submit`` call.
        progress: Called with the units done (bytes, or rows for Parquet).
        on_start: Called once with the total units before reading.

    Returns:
        What was read, stored, deduplicated, quarantined and rejected.

    Raises:
        MappingError: If the file cannot be opened or lacks a column the mapping reads.
    """
    source = open_rows(path, fmt, delimiter=delimiter)
    if source.columns is not None:
        mapper.check_columns(source.columns)
    if on_start is not None:
        on_start(source.total)
    report = ImportReport(file=str(path), mapping=mapper.name, source=mapper.source)
    pending: list[tuple[int, dict[str, Any]]] = []
    unseen = mapper.columns() if source.columns is None else set()
    for row in source.rows(progress):
        report.rows += 1
        if unseen and row.values is not None:
            unseen.difference_update(row.values)
        message = _map(row, mapper, report)
        if message is not None:
            pending.append((row.line, message))
        if len(pending) >= batch_size:
            _flush(pending, intake, report)
    _flush(pending, intake, report)
    report.warnings.extend(
        f"mapping '{mapper.name}' reads key '{c}', which no record has" for c in sorted(unseen)
    )
    return report


def _map(row: Row, mapper: RowMapper, report: ImportReport) -> dict[str, Any] | None:
    if row.values is None:
        report.bad(row.line, row.error or "unreadable row")
        return None
    try:
        message = mapper(row.values)
    except RowError as exc:
        report.bad(row.line, str(exc), exc.column, exc.cells)
        return None
    message.setdefault("context", {})["import"] = {"mapping": mapper.name, "line": row.line}
    return message


def _flush(pending: list[tuple[int, dict[str, Any]]], intake: Intake, report: ImportReport) -> None:
    """Submit a batch; messages the pipeline finds malformed become bad rows."""
    if not pending:
        return
    messages = [m for _, m in pending]
    result = intake.submit(messages, source=report.source, invalid="reject")
    for rejection in result.rejected:
        error = rejection.error
        report.bad(pending[rejection.index][0], str(error))
    report.submitted += len(messages) - len(result.rejected)
    report.stored += result.accepted
    report.duplicates += result.duplicates
    report.quarantined += result.quarantined
    pending.clear()


class CsvSource:
    """A CSV file with a header row, read with :mod:`csv` (exact line numbers).

    Undecodable bytes are kept as lone surrogates, so the row holding them is reported
    instead of the whole file failing.
    """

    def __init__(self, path: Path, delimiter: str = ",") -> None:
        self.path = path
        self.delimiter = delimiter
        self.total = path.stat().st_size
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as stream:
            self.columns: Sequence[str] | None = next(csv.reader(stream, delimiter=delimiter), [])

    def rows(self, progress: Progress | None) -> Iterator[Row]:
        """Yield each record with the line it starts on (the header is line 1)."""
        header = list(self.columns or ())
        with self.path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            reader = csv.reader(f, delimiter=self.delimiter)
            next(reader, None)
            last = reader.line_num
            for count, record in enumerate(_records(reader), start=1):
                line, last = last + 1, reader.line_num
                if record:
                    yield _csv_row(line, header, record)
                if progress is not None and count % 1000 == 0:
                    progress(f.buffer.tell())  # type: ignore[attr-defined]
        if progress is not None:
            progress(self.total)


def _records(reader: Any) -> Iterator[list[str] | Exception]:
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield exc


def _csv_row(line: int, header: list[str], record: list[str] | Exception) -> Row:
    if isinstance(record, Exception):
        return Row(line, None, f"malformed CSV: {record}")
    if len(record) != len(header):
        return Row(line, None, f"expected {len(header)} fields, found {len(record)}")
    if _undecodable("".join(record)):
        return Row(line, None, "not valid UTF-8 text")
    return Row(line, dict(zip(header, record, strict=True)))


def _undecodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class JsonlSource:
    """A file of JSON objects, one per line; blank lines are skipped."""

    columns: Sequence[str] | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.total = path.stat().st_size

    def rows(self, progress: Progress | None) -> Iterator[Row]:
        """Yield each line's object, or why it is not one."""
        done = 0
        with self.path.open("rb") as stream:
            for number, raw in enumerate(stream, start=1):
                done += len(raw)
                if raw.strip():
                    yield _json_row(number, raw)
                if progress is not None and number % 1000 == 0:
                    progress(done)
        if progress is not None:
            progress(self.total)


def _json_row(line: int, raw: bytes) -> Row:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Row(line, None, f"invalid JSON: {exc}")
    if not isinstance(value, dict):
        return Row(line, None, f"expected a JSON object, found {type(value).__name__}")
    return Row(line, value)


class ParquetSource:
    """A Parquet file read one record batch at a time; ``line`` is the row number."""

    def __init__(self, path: Path, batch_size: int = 10_000) -> None:
        self.path = path
        self.batch_size = batch_size
        try:
            meta = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise MappingError(f"{path.name} is not a readable Parquet file: {exc}") from None
        self.columns: Sequence[str] | None = meta.schema_arrow.names
        self.total = meta.metadata.num_rows

    def rows(self, progress: Progress | None) -> Iterator[Row]:
        """Yield the rows of each record batch in order."""
        number = 0
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=self.batch_size):
            for values in batch.to_pylist():
                number += 1
                yield Row(number, values)
            if progress is not None:
                progress(number)
