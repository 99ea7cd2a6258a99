"""Tables that stay readable at any width and in a pipe: the layout follows where the output goes.

Every command that prints rows (``models``, ``backends``, ``cost``, ``health``, the run summary, the
operator listings) hands them to :func:`show_table`, which picks one of three layouts:

- on a terminal wide enough for every cell, a boxed rich table;
- on a narrower terminal (80 columns is the common case), one record per row: its first cell on a
  line of its own, then ``column value`` pairs that wrap at word boundaries. No cell is cut short;
- not on a terminal (a pipe, a file), plain aligned columns with a header line, no box, no colour and
  no width limit, so that ``grep``, ``sort`` and ``awk`` see whole values.

Colour and styles in cells are :class:`rich.text.Text`; plain strings are taken literally (never
read as markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Cell", "Column", "show_table", "usd"]

Cell = str | Text


@dataclass(frozen=True)
class Column:
    """A column: its header and whether its values are numbers (aligned right)."""

    name: str
    numeric: bool = False


def show_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], *,
               title: str | None = None, total: Sequence[Cell] | None = None, heading: int = 0) -> None:
    """Print ``rows`` (and a ``total`` row under a rule) on ``console`` in the layout that fits it.

    ``heading`` is the column whose value heads each record in the narrow layout (the first one).
    """
    cells = [[_text(cell) for cell in row] for row in rows]
    last = [_text(cell) for cell in total] if total is not None else None
    if not console.is_terminal:
        _plain(console, columns, cells + ([last] if last else []))
        return
    table = Table(title=title, title_style="bold", title_justify="left")
    for column in columns:
        table.add_column(column.name, justify="right" if column.numeric else "left", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    if last is not None:
        table.add_section()
        table.add_row(*last)
    # Measured without the console's width limit: the table's natural width, every cell whole.
    natural = Measurement.get(console, console.options.update_width(1_000_000), table).maximum
    if natural <= console.width:
        console.print(table)
        return
    _records(console, columns, cells + ([last] if last else []), title, heading)


def usd(value: float | None) -> str:
    """A cost in USD for a table: ``unknown`` for a model without a known price (never ``0.000000``)."""
    if value is None:
        return "unknown"
    return "0" if value == 0 else f"{value:.6f}"


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _records(console: Console, columns: Sequence[Column], rows: list[list[Text]], title: str | None,
             heading: int) -> None:
    if title:
        console.print(Text(title, style="bold"), soft_wrap=False)
    room = max(20, console.width - 2)
    for row in rows:
        head = row[heading].copy()
        head.stylize("bold")
        console.print(head, soft_wrap=False)
        # Pairs are packed whole onto lines ("column value"), so a line never splits one in two.
        lines: list[Text] = []
        for index, (column, value) in enumerate(zip(columns, row, strict=True)):
            if index == heading or not value.plain:
                continue
            pair = Text()
            pair.append(f"{column.name} ", style="dim")
            pair.append_text(value)
            if lines and lines[-1].cell_len + 3 + pair.cell_len <= room:
                lines[-1].append(" · ", style="dim")
                lines[-1].append_text(pair)
            else:
                lines.append(pair)
        for line in lines:
            console.print(Text("  ").append_text(line), soft_wrap=False)


def _plain(console: Console, columns: Sequence[Column], rows: list[list[Text]]) -> None:
    header = [column.name for column in columns]
    values = [[cell.plain for cell in row] for row in rows]
    widths = [max(len(text) for text in column) for column in zip(header, *values, strict=True)]
    for line in [header, *values]:
        padded = [
            text.rjust(width) if column.numeric else text.ljust(width)
            for column, text, width in zip(columns, line, widths, strict=True)
        ]
        # Plain text (no markup, no wrapping): a pipe gets each row as one whole line.
        console.out("  ".join(padded).rstrip(), highlight=False)
