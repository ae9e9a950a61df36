"""CSV in and out: reading uploaded lists, writing exports that a spreadsheet opens safely.

Uploads are UTF-8 (a byte-order mark is allowed), with a header row naming the columns unless
said otherwise. ``read_header`` checks what can be checked before any row is read, so a file
that cannot be used at all is refused at once (422) rather than reported row by row. ``rows``
yields each record with the line it starts on, the way a person counts lines in an editor.

Exports go through ``safe_cell``: a value a spreadsheet would run as a formula (starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading apostrophe, so a lead
field such as ``=HYPERLINK(...)`` typed by someone into a CRM is shown, never run. Plain
numbers ("+14155550100", "-3.5") are left as they are: a spreadsheet reads them as numbers,
and no formula can hide in digits.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from controller.domain.errors import ControllerError

MAX_COLUMNS = 100
MAX_HEADER_LENGTH = 100
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "|": "|"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


class InvalidCsv(ControllerError, ValueError):
    """The file cannot be read as a CSV list."""

    code = "invalid-csv"
    status = 422


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int  # where the record starts (the header is line 1)
    values: list[str]


@dataclass(frozen=True, slots=True)
class CsvError:
    line: int
    reason: str


def decode(data: bytes) -> str:
    if not data.strip():
        raise InvalidCsv("the file is empty")
    if b"\x00" in data:
        raise InvalidCsv("the file contains NUL bytes: it is not a text CSV file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidCsv(f"the file is not UTF-8 (byte {exc.start} cannot be decoded); save it as "
                         "CSV UTF-8") from exc


def delimiter_of(name: str) -> str:
    try:
        return DELIMITERS[name]
    except KeyError as exc:
        raise InvalidCsv(f"delimiter must be one of {', '.join(DELIMITERS)}") from exc


def _reader(text: str, delimiter: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def read_header(text: str, delimiter: str) -> list[str]:
    """The header row's column names, checked (non-empty, distinct, not too many)."""
    reader = _reader(text, delimiter)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidCsv(f"line 1: {exc}") from exc
    if not header or not any(cell.strip() for cell in header):
        raise InvalidCsv("line 1: no header row (the first line names the columns)")
    header = [cell.strip() for cell in header]
    if len(header) > MAX_COLUMNS:
        raise InvalidCsv(f"line 1: {len(header)} columns; at most {MAX_COLUMNS}")
    for i, name in enumerate(header):
        if not name:
            raise InvalidCsv(f"line 1: column {i + 1} has no name")
        if len(name) > MAX_HEADER_LENGTH:
            raise InvalidCsv(f"line 1: column {i + 1}'s name is longer than {MAX_HEADER_LENGTH} characters")
        if name in header[:i]:
            raise InvalidCsv(f"line 1: column {name!r} appears twice")
    return header


def rows(text: str, delimiter: str, *, skip_header: bool) -> Iterator[CsvRow | CsvError]:
    """Each non-blank record with its starting line; an unreadable record is yielded as a
    CsvError and ends the file."""
    source = io.StringIO(text, newline="")
    reader = csv.reader(source, delimiter=delimiter)
    first = True
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield CsvError(start, f"unreadable CSV: {exc}")
            return
        if first and skip_header:
            first = False
            continue
        first = False
        if not any(value.strip() for value in values):
            continue
        yield CsvRow(start, values)


def count_rows(text: str, delimiter: str, *, skip_header: bool) -> int:
    return sum(1 for _ in rows(text, delimiter, skip_header=skip_header))


def safe_cell(value: object) -> str:
    """``value`` as a cell no spreadsheet will evaluate as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def write_rows(header: list[str], records: Iterable[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(name) for name in header])
    for record in records:
        writer.writerow([safe_cell(value) for value in record])
    return out.getvalue()
