"""Regenerate or check the generated parts of docs/API.md.

    python -m tools.api_doc          # rewrite the generated blocks of docs/API.md
    python -m tools.api_doc --check  # exit 1 (with a diff) if docs/API.md is out of date

docs/API.md is hand-written prose around blocks delimited by ``<!-- api_doc:begin NAME -->`` and
``<!-- api_doc:end NAME -->``. Each block is produced here from the live objects: the public
wrappers' ``inspect.signature`` (``frcnn_fast.__all__``), the NumPy twins' signatures
(``frcnn_fast.reference.__all__``) and the schema of every ``torch.ops.frcnn_fast`` op as the
dispatcher holds it. ``tests/test_api_doc.py`` fails whenever a block differs from what this
module would write, so an op or a signature cannot change without docs/API.md.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List

REPO_ROOT = Path(__file__).resolve().parent.parent
API_MD = REPO_ROOT / "docs" / "API.md"
NAMESPACE = "frcnn_fast"
BLOCK_RE = re.compile(
    r"(<!-- api_doc:begin (?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- api_doc:end (?P=name) -->)",
    re.S,
)


def summary(obj) -> str:
    """The first paragraph of a docstring (its summary) on one line, or an empty string."""
    doc = (inspect.getdoc(obj) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def signature_lines(module, qualifier: str) -> List[str]:
    """One markdown bullet per public name of ``module`` (its ``__all__``, in that order):
    ``name(signature)`` and the docstring's summary; classes also get ``forward`` when they
    have one. Submodules are skipped; constants show their value."""
    lines = []
    for name in sorted(module.__all__, key=str.lower):
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            continue
        if not callable(obj):
            lines.append(f"- `{qualifier}{name} = {obj!r}`")
            continue
        text = f"- `{qualifier}{name}{inspect.signature(obj)}`"
        doc = summary(obj)
        lines.append(f"{text}: {doc}" if doc else text)
        forward = getattr(obj, "forward", None) if inspect.isclass(obj) else None
        if forward is not None:
            lines.append(f"  - `forward{inspect.signature(forward)}`")
    return lines


def op_schemas() -> List[str]:
    """``str(schema)`` of every overload registered in the ``frcnn_fast`` namespace, without the
    namespace prefix, forward ops before their ``_..._backward`` op, otherwise by name."""
    import torch

    import frcnn_fast  # noqa: F401  (loads _C, which registers the ops)

    prefix = NAMESPACE + "::"
    schemas = [s for s in torch._C._jit_get_all_schemas() if s.name.startswith(prefix)]
    schemas.sort(key=lambda s: (s.name[len(prefix) :].lstrip("_"), s.name, s.overload_name))
    return [str(s)[len(prefix) :] for s in schemas]


def _wrappers() -> List[str]:
    import frcnn_fast

    return signature_lines(frcnn_fast, "")


def _reference() -> List[str]:
    import frcnn_fast.reference

    return signature_lines(frcnn_fast.reference, "reference.")


def _schemas() -> List[str]:
    return ["```"] + op_schemas() + ["```"]


GENERATORS: Dict[str, Callable[[], List[str]]] = {
    "wrappers": _wrappers,
    "reference": _reference,
    "schemas": _schemas,
}


def generated_blocks() -> Dict[str, str]:
    return {name: "\n".join(make()) + "\n" for name, make in GENERATORS.items()}


def blocks_in(text: str) -> Dict[str, str]:
    return {m.group("name"): m.group("body") for m in BLOCK_RE.finditer(text)}


def render(text: str, blocks: Dict[str, str]) -> str:
    """``text`` with the body of every known block replaced; unknown or missing blocks are
    errors (a renamed marker must not silently leave stale text behind)."""
    found = blocks_in(text)
    if set(found) != set(blocks):
        raise ValueError(
            f"{API_MD}: generated blocks {sorted(found)} != expected {sorted(blocks)} "
            "(markers: <!-- api_doc:begin NAME --> ... <!-- api_doc:end NAME -->)"
        )
    return BLOCK_RE.sub(lambda m: m.group(1) + blocks[m.group("name")] + m.group(4), text)


def diff(old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), "docs/API.md", "generated", n=1
        )
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.api_doc", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check; exit 1 if out of date")
    args = p.parse_args(argv)
    old = API_MD.read_text()
    new = render(old, generated_blocks())
    if args.check:
        if old != new:
            sys.stdout.write(diff(old, new))
            print("docs/API.md is out of date: run `python -m tools.api_doc`")
            return 1
        print("docs/API.md is up to date")
        return 0
    if old != new:
        API_MD.write_text(new)
        print("rewrote docs/API.md")
    else:
        print("docs/API.md already up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
