"""Reading rules files: the grammar (``rules.lark``), errors with positions, and the
translation of parse trees into typed rules (:mod:`.model`).

A rules file has one rule per line; blank lines and lines whose first non-blank character
is ``#`` or ``;`` are comments, and ``#`` after a blank starts a comment too. Each line is
parsed on its own, so one bad rule is reported with its line and column and the others
are still checked.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from lark import Lark, Tree
from lark import Token as LarkToken
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import UrsprungError
from . import fields as F
from . import model as m
from .compile import compile_condition, possible_kinds


class RuleError(UrsprungError, ValueError):
    """A rules file that cannot be used: every problem found, each with its position."""

    exit_code = 8

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the rules:\n"
                         + "\n".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class Problem:
    at: m.Position
    message: str

    def __str__(self) -> str:
        return f"{self.at}: {self.message}"


class _Fail(Exception):
    def __init__(self, column: int, message: str) -> None:
        self.column, self.message = column, message


_GRAMMAR = Path(__file__).with_name("rules.lark")
_parser: Lark | None = None
_lock = threading.Lock()


def _lark() -> Lark:
    global _parser
    with _lock:
        if _parser is None:
            _parser = Lark(_GRAMMAR.read_text(encoding="utf-8"), parser="lalr",
                           lexer="contextual", propagate_positions=True,
                           maybe_placeholders=False)
        return _parser


#: What an expected terminal is, in words.
_WORDS = {
    "_ARROW": "'->'", "_SEMI": "';'", "_AND": "'&&'", "_OR": "'||'", "BANG": "'!'",
    "_LPAR": "'('", "_RPAR": "')'", "OP": "an operator (= != < <= > >= @)",
    "FIELD": "a field name", "IDENT": "a name", "INT": "a number",
    "STRING": "a quoted value", "BARE": "a value", "WORD": "a word or quoted text",
    "FIELD_SPEC": "a field spec (N, N-M, N-e, N/H, A+B or an event field)",
    "DELIM": "DELIM and a delimiter", "QUERY_STATE": "QUERY/STATE-COLUMN",
    "TABLE_SPEC": "TABLE/COLUMN,...", "COMMA": "','", "SLASH": "'/'", "$END": "end of line",
}


def _expected(names: set[str] | frozenset[str]) -> str:
    words = sorted({_WORDS.get(n, n if n.isupper() else repr(n)) for n in names})
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["..."]
    return "; expected " + (words[0] if len(words) == 1 else "one of " + ", ".join(words))


def _syntax_message(exc: UnexpectedInput, line: str) -> tuple[int, str]:
    if isinstance(exc, UnexpectedEOF):
        return len(line) + 1, "unexpected end of line" + _expected(set(exc.expected))
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            return len(line.rstrip()) + 1, "unexpected end of line" + _expected(exc.expected)
        if tok.value == "DELIM" or line[exc.pos_in_stream:].startswith("DELIM"):
            return exc.column, ("DELIM needs one delimiter after one blank; quote a ';' or "
                                "a '#': DELIM \";\"")
        return exc.column, f"unexpected {tok.value!r}" + _expected(exc.expected)
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream or 0
        if line[at:].startswith("DELIM"):
            return exc.column, ("DELIM needs one delimiter after one blank; quote a ';' or "
                                "a '#': DELIM \";\"")
        return exc.column, f"unexpected {line[at:at + 1]!r}" + _expected(exc.allowed)
    return getattr(exc, "column", 1) or 1, str(exc).splitlines()[0]


def strip_comment_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of each line that holds a rule."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        body = line.strip()
        if body and body[0] not in "#;":
            out.append((number, line))
    return out


def parse_rules(text: str, file: str = "<rules>") -> list[m.Rule]:
    """All rules of a file's text; RuleError with every problem found otherwise."""
    rules: list[m.Rule] = []
    problems: list[Problem] = []
    for number, line in strip_comment_lines(text):
        try:
            rules.append(parse_rule(line, file, number))
        except RuleError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RuleError(problems)
    return rules


def load_rules(paths: list[str] | tuple[str, ...]) -> list[m.Rule]:
    """The rules of the files, in order; RuleError naming the files' problems."""
    rules: list[m.Rule] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(m.Position(str(path), 0, 0), f"cannot read: {exc}"))
            continue
        try:
            rules.extend(parse_rules(text, str(path)))
        except RuleError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RuleError(problems)
    return rules


def parse_rule(line: str, file: str = "<rule>", number: int = 1) -> m.Rule:
    """One rule from one line of text."""
    try:
        tree = _lark().parse(line)
    except UnexpectedInput as exc:
        column, message = _syntax_message(exc, line)
        raise RuleError([Problem(m.Position(file, number, column), message)]) from None
    builder = _Builder(file, number)
    try:
        condition = builder.condition(tree.children[0])
        actions = tuple(builder.action(a) for a in tree.children[1:])
    except _Fail as exc:
        raise RuleError([Problem(m.Position(file, number, exc.column), exc.message)]) from None
    text = line.strip()
    return m.Rule(
        id=hashlib.sha256(text.encode()).hexdigest()[:16], text=text,
        at=m.Position(file, number, 1), condition=condition,
        test=compile_condition(condition), kinds=possible_kinds(condition),
        actions=actions, warnings=tuple(builder.warnings),
    )


def unquote(text: str) -> str:
    """A quoted value's text: ``\\"`` (or ``\\'``) is the quote, anything else is kept as
    written, so a regex keeps its backslashes."""
    quote = text[0]
    return text[1:-1].replace("\\" + quote, quote)


def _text(tok: LarkToken) -> str:
    return unquote(str(tok)) if tok.type == "STRING" else str(tok)


def _col(node: LarkToken | Tree) -> int:
    if isinstance(node, LarkToken):
        return node.column or 1
    return getattr(node.meta, "column", 1) or 1


class _Builder:
    def __init__(self, file: str, line: int) -> None:
        self.file, self.line = file, line
        self.warnings: list[str] = []

    def pos(self, node: LarkToken | Tree) -> m.Position:
        return m.Position(self.file, self.line, _col(node))

    # -------------------------------------------------------------- conditions

    def condition(self, node: Tree | LarkToken) -> m.Condition:
        assert isinstance(node, Tree)
        kind = node.data
        if kind == "or_expr":
            return m.Or(tuple(self.condition(c) for c in node.children))
        if kind == "and_expr":
            return m.And(tuple(self.condition(c) for c in node.children))
        if kind == "negation":
            return m.Not(self.condition(node.children[1]))
        return self.compare(node)

    def field(self, tok: LarkToken) -> F.Field:
        name = str(tok)
        found = F.resolve(name)
        if found is None:
            close = difflib.get_close_matches(name, F.known_names(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                "; see docs/rules.md for the fields"
            raise _Fail(_col(tok), f"unknown field {name!r}{hint}")
        return found

    def compare(self, node: Tree) -> m.Compare:
        name_tok, op_tok, value_tok = node.children
        assert isinstance(name_tok, LarkToken) and isinstance(op_tok, LarkToken)
        assert isinstance(value_tok, LarkToken)
        name, op = str(name_tok), str(op_tok)
        at = self.pos(name_tok)
        raw = _text(value_tok)
        if name in F.UNAVAILABLE:
            self.warnings.append(f"{at}: field {name!r} is never set "
                                 f"({F.UNAVAILABLE[name]}): the condition is never true")
            return m.Compare(name, None, op, raw, None, at)
        field = self.field(name_tok)
        if op == "@":
            pattern = raw
            if value_tok.type == "BARE":  # the original's convention: [ ] for ( )
                pattern = pattern.replace("[", "(").replace("]", ")")
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise _Fail(_col(value_tok), f"bad regex {pattern!r}: {exc}") from None
            return m.Compare(name, field, op, pattern, regex, at)
        if field.type == F.NUMBER or op in ("<", ">", "<=", ">="):
            if field.type != F.NUMBER:
                raise _Fail(_col(op_tok), f"{op!r} compares numbers, and {name} is text; "
                            "use = != or @")
            try:
                number = float(raw)
            except ValueError:
                raise _Fail(_col(value_tok),
                            f"{name} is a number; {raw!r} is not a number") from None
            return m.Compare(name, field, op, number, None, at)
        return m.Compare(name, field, op, raw, None, at)

    # -------------------------------------------------------------- actions

    def action(self, node: Tree | LarkToken) -> m.Action:
        assert isinstance(node, Tree)
        return getattr(self, f"_{node.data}")(node)

    def _parts(self, node: Tree) -> tuple[list[LarkToken], dict[str, Tree]]:
        toks = [c for c in node.children if isinstance(c, LarkToken)]
        subs = {str(c.data): c for c in node.children if isinstance(c, Tree)}
        return toks, subs

    def regex(self, tok: LarkToken) -> re.Pattern[str]:
        try:
            return re.compile(_text(tok))
        except re.error as exc:
            raise _Fail(_col(tok), f"bad regex {_text(tok)!r}: {exc}") from None

    def into(self, subs: dict[str, Tree]) -> m.Destination:
        node = subs.get("into")
        if node is None:
            return m.IntoGraph()
        dest = node.children[0]
        assert isinstance(dest, Tree)
        if dest.data == "into_file":
            tok = dest.children[0]
            assert isinstance(tok, LarkToken)
            return m.IntoFile(_text(tok))
        if dest.data == "into_graph":
            return m.IntoGraph()
        conn, spec = dest.children
        assert isinstance(conn, Tree) and isinstance(spec, LarkToken)
        url = self.url(conn)
        table, _, cols = str(spec).partition("/")
        return m.IntoDb(url, table, tuple(cols.split(",")))

    def url(self, conn: Tree) -> str:
        text = " ".join(_text(t) for t in conn.children if isinstance(t, LarkToken))
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(text)
        except (ArgumentError, ValueError):
            raise _Fail(_col(conn), f"{text!r} is not a database URL (SQLAlchemy form, "
                        "e.g. postgresql://user:password@host/db or sqlite:///path)") from None
        return text

    def extract(self, node: Tree | None, match: re.Pattern[str]) -> m.Extract:
        specs: list[str] = []
        values: list[m.FieldSpec] = []
        delim = ","
        names: list[str] = []
        metrics: list[str] = []
        step: str | None = None
        for part in node.children if node is not None else ():
            assert isinstance(part, Tree)
            toks = [str(t) for t in part.children]
            if part.data == "fields":
                for tok in part.children:
                    assert isinstance(tok, LarkToken)
                    specs.append(str(tok))
                    values.append(self.field_spec(tok))
            elif part.data == "delim":
                delim = self.delim(part.children[0])  # type: ignore[arg-type]
            elif part.data == "names":
                names = toks
            elif part.data == "metrics":
                metrics = toks
            elif part.data == "step":
                step = toks[0]
        if not values:
            groups = [g for g in match.groupindex]
            default = groups or ["line"]
        else:
            default = specs
        if names and len(names) != len(default):
            raise _Fail(_col(node), f"AS names {len(names)} values, the rule extracts "  # type: ignore[arg-type]
                        f"{len(default)}")
        final = tuple(names or default)
        for name in [*metrics, *([step] if step else [])]:
            if name not in final:
                raise _Fail(_col(node), f"{name!r} is not one of the extracted values "  # type: ignore[arg-type]
                            f"({', '.join(final)})")
        return m.Extract(tuple(values), tuple(specs), delim, final, tuple(metrics), step)

    def delim(self, tok: LarkToken) -> str:
        value = str(tok)[len("DELIM") + 1:]
        if value[:1] in "\"'" and len(value) > 1:
            value = unquote(value)
        if not value:
            raise _Fail(_col(tok), "empty delimiter")
        return value

    def field_spec(self, tok: LarkToken) -> m.FieldSpec:
        text = str(tok)
        if text[0].isalpha() or text[0] == "_":
            return m.EventValue(self.field(tok))
        if "+" in text:
            return m.Composite(tuple(int(p) for p in text.split("+")))
        body, _, hours_text = text.partition("/")
        hours = int(hours_text) if hours_text else None
        if "-" in body:
            first, _, last = body.partition("-")
            end = None if last == "e" else int(last)
            if end is not None and end < int(first):
                raise _Fail(_col(tok), f"range {text!r} ends before it starts")
            return m.TokenRange(int(first), end, hours)
        return m.Token(int(body), hours)

    def _track(self, node: Tree) -> m.Track:
        toks, subs = self._parts(node)
        return m.Track(self.regex(toks[0]), _text(toks[1]) if len(toks) > 1 else None,
                       self.into(subs))

    def _logload(self, node: Tree) -> m.LogLoad:
        toks, subs = self._parts(node)
        match = self.regex(toks[1])
        return m.LogLoad(self.field(toks[0]), match, self.extract(subs.get("extract"), match),
                         self.into(subs))

    def _capture(self, node: Tree) -> m.CaptureStdout:
        toks, subs = self._parts(node)
        match = self.regex(toks[0])
        return m.CaptureStdout(match, self.extract(subs.get("extract"), match),
                               self.into(subs))

    def _dbload(self, node: Tree) -> m.DbLoad:
        toks, subs = self._parts(node)
        header = 1
        if "header" in subs:
            header = int(str(subs["header"].children[0]))
        delim = ","
        if "delim" in subs:
            delim = self.delim(subs["delim"].children[0])  # type: ignore[arg-type]
        return m.DbLoad(self.field(toks[0]), header, delim, self.into(subs))

    def _dbtransfer(self, node: Tree) -> m.DbTransfer:
        toks, subs = self._parts(node)
        if toks[0].type == "QUERY_STATE":
            query, _, column = str(toks[0]).rpartition("/")
        else:
            query, column = unquote(str(toks[0])), str(toks[1])
        query = query.strip()
        if not query:
            raise _Fail(_col(toks[0]), "empty query")
        return m.DbTransfer(query, column, self.url(subs["connection"]), self.into(subs))

    def _run_rule(self, node: Tree) -> m.RunRoot:
        toks, _ = self._parts(node)
        return m.RunRoot(_text(toks[0]))
