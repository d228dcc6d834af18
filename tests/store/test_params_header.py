"""FalkorDB's parameter header (`store/falkordb.header_bytes`) gives, byte for byte, the text
the previous implementation gave (kept here as ``reference``: keys found in the encoded
text by a regular expression), on hostile and random values; and `literal_header` is the
official client's own header where JSON cannot say a value. What FalkorDB makes of the text
is checked against the server in tests/test_store.py."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ursprung_graph.store.base import StoreError
from ursprung_graph.store.falkordb import header_bytes, literal_header, params_header

_json = msgspec.json.Encoder()
_JSON_KEY = re.compile(rb'[{,]"([A-Za-z_][A-Za-z0-9_]*)":')


def reference(params: dict[str, Any] | None) -> str | None:
    """`params_header` as of c1a3608."""
    if not params:
        return None
    parts = []
    for name, value in params.items():
        data = _json.encode(value)
        if b"\\u" in data:
            return None
        for key in set(_JSON_KEY.findall(data)):
            data = data.replace(b'"' + key + b'":', key + b":")
        parts.append(b"`" + name.encode() + b"`=" + data)
    return "CYPHER " + b" ".join(parts).decode() + " "


def same(params: dict[str, Any]) -> None:
    expected = reference(params)
    assert params_header(params) == expected
    got = header_bytes(params)
    assert (got is None) == (expected is None)
    if got is not None:
        assert got == expected.encode()


HOSTILE = [
    "", "plain", 'a "quoted" word', '"', '\\', '\\"', 'x":', '"key":', ',"key":1',
    '{"key":"v"}', 'a\\":{', '{', '}', '[', ']', ',', ':', '":{', '{"', ',"', "\\\\u0041",
    "\\u", "tab\there", "new\nline", "ret\r", "bell\x07", "esc\x1b[0m", "nul\x00byte",
    "\x7f", "ünïcödé ☃ 𝄞", "\u2028\u2029", "$param {key: 1}) DETACH DELETE n //", "`tick`",
]
KEYS = ["key", "path", "_x", "a1", "mtime", "1bad", "my-key", "", "ü", "x\"a", "a", "K",
        "with space", "`"]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_in_flat_rows(text: str) -> None:
    rows = [{"key": text, "path": f"/d/{text}", "size": 3, "ok": True, "none": None,
             "f": 1.5, "key2": text[::-1]} for _ in range(3)]
    same({"rows": rows})
    same({"rows": rows, "one": text, "n": 7})
    same({"rows": [{text: 1, "key": 2}] if text else [{"key": 2}]})


@pytest.mark.parametrize("key", KEYS)
def test_keys_that_are_not_names_stay_as_they_were(key: str) -> None:
    same({"rows": [{key: "v", "a": 'x"a":1', "b": 2}, {"b": 3, key: None}]})
    same({"row": {key: 1, "a": {key: 2}}})


def test_nested_maps_lists_and_mixed_tops() -> None:
    same({"rows": [{"a": {"b": 1, "c": {"d": [1, {"e": "f"}]}}, "g": []}]})
    same({"rows": [{"a": [1, 2], "b": ["x", 'y"z', "{"]}, {"a": [], "c": {}}]})
    same({"rows": [{"a": 1}, 1, "x", None, [{"b": 2}]]})
    same({"rows": [[{"a": 1}], [{"b": 2}]]})
    same({"rows": [{}, {"a": 1}, {}]})
    same({"rows": [{}]})
    same({"rows": []})
    same({"keys": ["a", "b", "c"], "rows": ({"a": 1}, {"b": 2})})
    same({"map": {}, "s": "x", "i": -(2**63), "big": 2**63 - 1, "fl": -0.0, "t": False})
    same({"rows": [{"a": "[", "b": '":{'}, {"a": "]"}]})  # text that looks like nesting


_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    HOSTILE)
_keys = st.sampled_from(KEYS) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), _texts,
                     st.floats(allow_nan=False, allow_infinity=False))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_keys, inner, max_size=3), max_leaves=8)
_flat_rows = st.lists(st.dictionaries(_keys, _scalars, max_size=6), min_size=1, max_size=5)


@hsettings(max_examples=400, deadline=None)
@given(rows=_flat_rows)
def test_random_flat_rows(rows: list[dict[str, Any]]) -> None:
    same({"rows": rows})


@hsettings(max_examples=400, deadline=None)
@given(params=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,4}", fullmatch=True),
                              _values, min_size=1, max_size=3))
def test_random_nested_values(params: dict[str, Any]) -> None:
    same(params)


@hsettings(max_examples=300, deadline=None)
@given(params=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,4}", fullmatch=True),
                              _values, min_size=1, max_size=3))
def test_literal_header_is_the_clients_own(params: dict[str, Any]) -> None:
    from falkordb.graph import Graph

    build = Graph._build_params_header  # uses nothing of its graph
    try:
        expected = build(None, params)
    except ValueError:  # an empty key or a backtick: the client refuses, so do we
        with pytest.raises(StoreError):
            literal_header(params)
        return
    assert literal_header(params) == expected.encode()
