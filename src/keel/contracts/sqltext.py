"""SQL text a contract carries, parsed and blamed (pure): shared by GDP mappings and KPI formulas.

``SqlText`` is a piece of SQL someone wrote into a contract (a mapping, a KPI formula or
filter) with how to point at a place in it; ``parse_sql`` reads it into SQLGlot statements, a
syntax error becoming a ``MappingError`` at the offending token (line and column, 1-based, in
the text the user wrote). The type helpers (``SQL_TYPES``, ``keel_type``, ``sql_schema``) map
Keel types to SQL types and back. Used by ``mapping.py``, ``kpi_sql.py`` and
``extension_rules.py``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.schema import MappingSchema
from sqlglot.tokens import TokenType

from keel.contracts.model import Dataset
from keel.kernel.errors import InvalidInput

# How each Keel type is declared to SQLGlot. Only the kind matters to the checks (a decimal's
# precision is the engine's business), so one representative SQL type per Keel type.
SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "decimal": "DECIMAL(38, 9)",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "time": "TIME",
    "object": "JSON",
    "array": "ARRAY",
}

_T = exp.DataType.Type
_KEEL_TYPES: tuple[tuple[frozenset, str], ...] = (
    (frozenset(exp.DataType.INTEGER_TYPES), "integer"),
    (frozenset(exp.DataType.FLOAT_TYPES), "number"),
    (frozenset(exp.DataType.REAL_TYPES - exp.DataType.FLOAT_TYPES), "decimal"),
    (frozenset(exp.DataType.TEXT_TYPES | {_T.UUID}), "string"),
    (frozenset({_T.BOOLEAN}), "boolean"),
    (frozenset({_T.DATE, _T.DATE32}), "date"),
    (frozenset({_T.TIME, _T.TIMETZ}), "time"),
    (frozenset(exp.DataType.TEMPORAL_TYPES - {_T.DATE, _T.DATE32, _T.TIME, _T.TIMETZ}), "timestamp"),
    (frozenset(exp.DataType.STRUCT_TYPES | {_T.JSON, _T.MAP, _T.VARIANT}), "object"),
    (frozenset(exp.DataType.ARRAY_TYPES), "array"),
)


def keel_type(datatype: exp.DataType | None) -> str | None:
    """The Keel type (``model.TYPES``) of a SQLGlot type, or None when it has none (or is unknown)."""
    if datatype is None:
        return None
    return next((name for kinds, name in _KEEL_TYPES if datatype.this in kinds), None)


def sql_schema(datasets: Mapping[str, Dataset], dialect: str) -> MappingSchema:
    """A SQLGlot schema of qualified tables ("raw.erp__invoices") with their fields' SQL types."""
    nested: dict[str, dict[str, dict[str, str]]] = {}
    for table, dataset in datasets.items():
        db, _, name = table.lower().rpartition(".")
        nested.setdefault(db, {})[name] = {
            f.name.lower(): SQL_TYPES.get(f.type, "UNKNOWN") for f in dataset.fields
        }
    return MappingSchema(nested, dialect=dialect)


class MappingError(InvalidInput):
    """SQL a contract carries (a GDP mapping, a KPI formula or filter) that does not fit it.

    ``kind`` says what is wrong (``unknown_column``, ``type_mismatch``, ...); ``line`` and
    ``column`` (1-based) and ``token`` say where in the text, when there is a place to point at.
    """

    def __init__(
        self,
        field: str,
        problem: str,
        *,
        subject: str,
        kind: str,
        line: int | None = None,
        column: int | None = None,
        token: str | None = None,
        contract: str | None = None,
        dataset: str | None = None,
        suggestion: str | None = None,
        offset: int | None = None,
    ) -> None:
        where = f"{subject}, line {line} col {column}" if line is not None else subject
        super().__init__(
            field,
            f"{where}: {problem}",
            kind=kind,
            problem=problem,
            line=line,
            column=column,
            token=token,
            contract=contract,
            dataset=dataset,
            suggestion=suggestion,
        )
        self.kind, self.problem, self.token, self.suggestion = kind, problem, token, suggestion
        self.line, self.column, self.contract, self.dataset = line, column, contract, dataset
        self.offset = offset  # where in the text (0-based), to report the first of several problems


Span = tuple[int, int]  # first and last character offsets (inclusive) in the SQL text


@dataclass(frozen=True)
class SqlText:
    """A piece of SQL someone wrote into a contract, and how to blame a place in it."""

    text: str
    field: str  # the input it came from, e.g. "datasets.invoice.mapping" or "kpi.filters[0]"
    subject: str  # how a message names it, e.g. "mapping of gdp.invoice"
    contract: str | None = None
    dataset: str | None = None

    def keyword(self, word: str, node: exp.Expr) -> Span | None:
        """Where the keyword introducing ``node`` is written (SQLGlot keeps no offsets for keywords):
        its last occurrence before the node's first token; else the node's own span."""
        span = span_of(node)
        if span is None:
            return None
        found = list(re.finditer(rf"\b{re.escape(word)}\b", self.text[: span[0]], re.IGNORECASE))
        return (found[-1].start(), found[-1].end() - 1) if found else span

    @property
    def whole(self) -> Span:
        """The span of the whole text (for a problem with all of it)."""
        stripped = self.text.strip()
        start = self.text.find(stripped) if stripped else 0
        return start, start + max(len(stripped) - 1, 0)

    def error(
        self, kind: str, problem: str, at: exp.Expr | Span | None = None, suggestion: str | None = None
    ) -> MappingError:
        """A ``MappingError`` for this text, positioned at a parsed node or a span of characters."""
        span = span_of(at) if isinstance(at, exp.Expr) else at
        line = column = token = offset = None
        if span is not None:
            offset = span[0]
            line = self.text.count("\n", 0, offset) + 1
            column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
            token = self.text[span[0] : span[1] + 1]
        if suggestion:
            problem = f"{problem} (did you mean '{suggestion}'?)"
        return MappingError(
            self.field,
            problem,
            subject=self.subject,
            kind=kind,
            line=line,
            column=column,
            token=token,
            contract=self.contract,
            dataset=self.dataset,
            suggestion=suggestion,
            offset=offset,
        )


def span_of(node: exp.Expr) -> Span | None:
    """Where a parsed node was read from: its own token when it has one (SQLGlot keeps offsets on
    identifiers, literals, stars and function names), else from its first token to its last;
    None for a node made up after parsing."""
    if "start" in node.meta:
        return node.meta["start"], node.meta["end"]
    spans = [(n.meta["start"], n.meta["end"]) for n in node.walk() if "start" in n.meta]
    return (min(s for s, _ in spans), max(e for _, e in spans)) if spans else None


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest of ``candidates`` to a misspelt ``name``, if any is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return close[0] if close else None


_TOKEN_REPR = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: .*?>")
_CLASS_REPR = re.compile(r"<class 'sqlglot\.[\w.]*?(\w+)'>")


def _syntax_problem(description: str) -> str:
    """SQLGlot's description of a syntax error, with its Python reprs put in SQL words."""

    def token(match: re.Match) -> str:
        return "the end of the text" if match.group(1) == "SENTINEL" else f"'{match.group(2)}'"

    described = _CLASS_REPR.sub(lambda match: match.group(1).upper(), description)
    return "syntax error: " + _TOKEN_REPR.sub(token, described)


def _parse_error_span(source: str, error: dict) -> Span | None:
    """Where SQLGlot's parse error points: it gives the line and the column the token ends at."""
    line, col, token = error.get("line"), error.get("col"), error.get("highlight") or ""
    if not line or not col:
        return None
    line_start = sum(len(text) + 1 for text in source.split("\n")[: line - 1])
    end = min(line_start + col - 1, max(len(source) - 1, 0))
    return (max(end - len(token) + 1, line_start), end)


def parse_sql(text: SqlText, dialect: str) -> list[tuple[exp.Expr, Span]]:
    """The statements of ``text``, each with the span of its first token; a syntax error in it
    becomes a positioned ``MappingError``."""
    source = text.text
    engine = Dialect.get_or_raise(dialect)
    tokenizer = engine.tokenizer()
    try:
        tokens = tokenizer.tokenize(source)
    except TokenError:
        # The error lies after the last token read: point at the next character written.
        offset = tokenizer.tokens[-1].end + 1 if tokenizer.tokens else 0
        while offset < len(source) - 1 and source[offset].isspace():
            offset += 1
        problem = "syntax error: cannot read the text from here (an unclosed quote?)"
        raise text.error("syntax_error", problem, (offset, offset)) from None
    try:
        statements = engine.parser().parse(tokens, source)
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        problem = _syntax_problem(first.get("description") or str(e))
        raise text.error("syntax_error", problem, _parse_error_span(source, first)) from None
    starts, current = [], None
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if current is not None:
                starts.append(current)
            current = None
        elif current is None:
            current = (token.start, token.end)
    if current is not None:
        starts.append(current)
    found = [s for s in statements if s is not None]
    if len(starts) != len(found):  # comments on semicolons make chunks of their own; do not guess
        starts = [(0, 0)] * len(found)
    return list(zip(found, starts, strict=True))


def statement_kind(statement: exp.Expr) -> str:
    """How a message names a statement: "INSERT", "CREATE TABLE", ..."""
    if isinstance(statement, exp.Command):
        return str(statement.this).upper()
    if isinstance(statement, exp.Create) and statement.args.get("kind"):
        return f"CREATE {statement.args['kind']}".upper()
    return statement.key.upper()
