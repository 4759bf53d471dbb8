"""Reading a broker note's converted text: its tables, printed figures, market data and rating.

A note reaches us as the text a PDF converter writes: tables as tab-separated rows, or as HTML
`<table>` markup inside Markdown (MinerU). The reader is a pipeline of small stages, one module
each, each stage's output a plain value the next one reads:

- `source`: the note's text, split into text lines and tables;
- `numbers`: one printed figure at its printed precision, converter damage repaired;
- `tables`: titles, kinds, units, year columns and rows of figures;
- `facts`: company, ticker, date, price, shares and market capitalisation;
- `ratings`: the published rating and action, and the broker's scheme;
- `roles`: what each printed line is, by its label's family (`data/label_roles.toml`);
- `structure`: which lines add up to which, with their signs;
- `import_report`: what was read and what was not.

Pure reading: no Excel, no files written. Every word a note uses for a currency, a market, a
table kind or a line lives in the label data, not here.
"""
from .import_report import import_report, read_and_report
from .labels import (LABEL_ROLES, ROLE_SECTIONS, STATEMENTS, YEAR_KINDS, LabelData, default_label_data,
                     load_label_data, normalise_label)
from .facts import MarketData, MarketFigure
from .numbers import (FOOTNOTE_MARK, FULL_WIDTH, NEGATIVE_ZERO, PARENTHESES, SPACE_IN_NUMBER, THOUSANDS, UNICODE_MINUS,
                      PrintedNumber, parse_number, parse_range)
from .ratings import RatingBand, RatingScheme
from .reader import Note, read_note
from .roles import RoleMatch, map_roles
from .source import NoteError
from .structure import (IdentityFailure, PartialIdentity, Part, Subtotal, identity_failures, infer_subtotals,
                        memo_rows, partial_identities)
from .repair import LABEL_ABOVE, LABEL_SPLIT, PLACEHOLDER
from .tables import Row, Table, YearColumn


__all__ = [
    "import_report",
    "read_and_report",
    "LABEL_ROLES",
    "ROLE_SECTIONS",
    "STATEMENTS",
    "YEAR_KINDS",
    "LabelData",
    "default_label_data",
    "load_label_data",
    "normalise_label",
    "MarketData",
    "MarketFigure",
    "FOOTNOTE_MARK",
    "FULL_WIDTH",
    "NEGATIVE_ZERO",
    "PARENTHESES",
    "SPACE_IN_NUMBER",
    "THOUSANDS",
    "UNICODE_MINUS",
    "PrintedNumber",
    "parse_number",
    "parse_range",
    "RatingBand",
    "RatingScheme",
    "Note",
    "read_note",
    "RoleMatch",
    "map_roles",
    "NoteError",
    "IdentityFailure",
    "PartialIdentity",
    "Part",
    "Subtotal",
    "identity_failures",
    "infer_subtotals",
    "memo_rows",
    "partial_identities",
    "LABEL_ABOVE",
    "LABEL_SPLIT",
    "PLACEHOLDER",
    "Row",
    "Table",
    "YearColumn",
]
