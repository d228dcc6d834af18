"""`query.classify.matcher` answers as `fnmatch.fnmatchcase` does, for any patterns and
texts (its string tests for the common shapes and the expression for the rest)."""

from __future__ import annotations

import fnmatch

from hypothesis import given, settings
from hypothesis import strategies as st

from ursprung_graph.config import DEFAULT_IGNORE_PATTERNS
from ursprung_graph.query.classify import LIBRARY_PATTERNS, Classifier, matcher

# texts and patterns from a few pieces, so that they often meet
_PIECES = ["a", "b", ".so", "/lib/", "python3", "é", "\n", "/"]
_LITERAL = st.lists(st.sampled_from(_PIECES), max_size=3).map("".join)
_PATTERN = st.one_of(
    _LITERAL,
    _LITERAL.map(lambda t: "*" + t), _LITERAL.map(lambda t: t + "*"),
    _LITERAL.map(lambda t: "*" + t + "*"),
    st.lists(st.sampled_from([*_PIECES, "*", "?", "[ab]", "[!a]", "["]), max_size=5)
    .map("".join),
)
_TEXT = st.lists(st.sampled_from([*_PIECES, "*", "?", "["]), max_size=6).map("".join)


@settings(max_examples=400, deadline=None)
@given(patterns=st.lists(_PATTERN, min_size=1, max_size=3),
       texts=st.lists(_TEXT, min_size=1, max_size=8))
def test_matcher_is_fnmatchcase(patterns: list[str], texts: list[str]) -> None:
    test = matcher(tuple(patterns))
    for text in texts:
        assert test(text) == any(fnmatch.fnmatchcase(text, p) for p in patterns), \
            (patterns, text)


def test_the_default_patterns() -> None:
    c = Classifier()
    assert c.ignored("/w/__pycache__/x.cpython-311.pyc") and c.ignored("/w/a.pyc")
    assert c.ignored("/home/u/.cache/pip/x") and not c.ignored("/w/cache/x")
    assert c.system("/usr/lib/x") and c.system("/opt/x/libfoo.so.1")
    assert c.system("/home/u/venv/lib/python3.11/site.py")
    assert not c.system("/home/u/lib/python2/x.py") and not c.system("/w/data.csv")
    assert matcher(("*",))("anything") and not matcher(())("x")
    for path in ("/a/site-packages/b", "/a/b.swp", "/x/.git/HEAD"):
        assert matcher(DEFAULT_IGNORE_PATTERNS)(path)
    assert matcher(LIBRARY_PATTERNS)("/lib/python3/x/") is True
