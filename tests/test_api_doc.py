"""docs/API.md cannot drift from the code: every op schema and every public signature appears in
it verbatim, it lists nothing that does not exist, and its generated blocks are exactly what
``python -m tools.api_doc`` writes (run that after changing an op or a wrapper)."""

import re

import pytest

from tools import api_doc

HINT = "docs/API.md is out of date: rebuild (make build) and run `python -m tools.api_doc`"


@pytest.fixture(scope="module")
def text():
    return api_doc.API_MD.read_text()


@pytest.fixture(scope="module")
def live_schemas():
    schemas = api_doc.op_schemas()
    assert len(schemas) >= 19  # every op of the namespace, not an empty list by accident
    return schemas


def _op_name(schema: str) -> str:
    return re.match(r"[A-Za-z_][A-Za-z0-9_.]*", schema).group(0)


def test_every_op_schema_is_in_api_md(text, live_schemas):
    missing = [s for s in live_schemas if s not in text]
    assert not missing, f"{HINT}; schemas not in it verbatim:\n" + "\n".join(missing)


def test_api_md_lists_only_existing_ops(text, live_schemas):
    listed = api_doc.blocks_in(text)["schemas"].strip().strip("`").strip().splitlines()
    stale = [s for s in listed if s not in live_schemas]
    assert not stale, f"{HINT}; schemas in it that no registered op has:\n" + "\n".join(stale)
    live_ops = {_op_name(s) for s in live_schemas}
    cited = set(re.findall(r"torch\.ops\.frcnn_fast\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert cited <= live_ops, f"docs/API.md names ops that do not exist: {cited - live_ops}"


@pytest.mark.parametrize("block", ["wrappers", "reference"])
def test_every_public_signature_is_in_api_md(text, block):
    expected = api_doc.GENERATORS[block]()
    missing = [line for line in expected if line not in text]
    assert not missing, f"{HINT}; signatures not in it verbatim:\n" + "\n".join(missing)
    listed = api_doc.blocks_in(text)[block].splitlines()
    stale = [line for line in listed if line not in expected]
    assert not stale, f"{HINT}; entries of names that no longer exist:\n" + "\n".join(stale)


def test_generated_blocks_are_up_to_date(text):
    new = api_doc.render(text, api_doc.generated_blocks())
    assert new == text, f"{HINT}:\n{api_doc.diff(text, new)}"


def test_a_changed_schema_is_caught(text, live_schemas):
    """The check itself can fail: one schema edited as a C++ change would edit it."""
    blocks = api_doc.generated_blocks()
    first = live_schemas[0]
    changed = first.replace(")", ", bool extra) ", 1)
    blocks["schemas"] = blocks["schemas"].replace(first, changed)
    assert api_doc.render(text, blocks) != text
    assert changed not in text


def test_markers_are_required(text):
    with pytest.raises(ValueError, match="generated blocks"):
        api_doc.render(text.replace("<!-- api_doc:begin schemas -->", ""), {"schemas": ""})
