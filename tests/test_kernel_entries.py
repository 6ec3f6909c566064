"""A rule of the C++ sources: every registered kernel entry (each function passed to ``m.impl`` in
csrc/cpu/*_kernel.cpp and csrc/cuda/*_kernel.cu) starts with its op's shared input check, a
``check_*`` function declared in csrc/<op>.h and defined once in csrc/<op>.cpp. Then the CPU and
CUDA kernels reject the same inputs with the same messages, and no kernel reads a tensor before
it has been checked."""

import re
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[1] / "csrc"
KERNEL_FILES = sorted(CSRC.glob("cpu/*_kernel.cpp")) + sorted(CSRC.glob("cuda/*_kernel.cu"))


def _code(text):
    """The source without comments and string literals (op names in m.impl are kept apart)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def declared_checks(header_code):
    """The check_* functions a csrc/<op>.h declares (or calls, in the entries it defines)."""
    return set(re.findall(r"\b(check_\w+)\s*\(", header_code))


def registered_entries(code):
    """(op, function) of every m.impl("op", &function) in a kernel file."""
    return re.findall(r"\bm\.impl\(\s*\"(\w+)\"\s*,\s*&?\s*([\w:]+)\s*\)", code)


def first_statement(code, function):
    """The first statement of `function`'s body, or None where no definition is found."""
    name = function.split("::")[-1]
    # The definition: the name, its parameter list (no braces or semicolons inside), the body.
    m = re.search(r"\b" + re.escape(name) + r"\s*\([^{};]*\)\s*\{", code)
    if m is None:
        return None
    return code[m.end() : code.index(";", m.end())].strip()


def entry_violations(path, header=None):
    """What breaks the rule in one kernel file (empty when it holds). An entry is defined in the
    kernel file or, when both backends share it (RoiPoolEntries, RoiAlignEntries), in the op's
    header csrc/<op>.h (or ``header``)."""
    code = _code(path.read_text())
    header = header or CSRC / f"{path.name.split('_kernel.')[0]}.h"
    assert header.exists(), f"{header.name} is missing: the shared input checks live there"
    header_code = _code(header.read_text())
    checks = declared_checks(header_code)
    entries = registered_entries(code)
    if not entries:
        return [f"{path.name}: registers no kernel"]
    broken = []
    for op, function in entries:
        statement = first_statement(code, function) or first_statement(header_code, function)
        if statement is None:
            broken.append(f"{op}: no definition of {function} in {path.name} or {header.name}")
            continue
        # The first call of the first statement (it may initialise a result, as box_convert's).
        call = re.search(r"\b(\w+)\s*\(", statement)
        if call is None or call.group(1) not in checks:
            broken.append(
                f"{op}: {function} must start with a check_* of csrc/"
                f"{path.name.split('_kernel.')[0]}.h ({sorted(checks)}), starts with "
                f"`{statement[:80]}`"
            )
    return broken


@pytest.mark.parametrize(
    "path", KERNEL_FILES, ids=[f"{p.parent.name}/{p.name}" for p in KERNEL_FILES]
)
def test_every_kernel_entry_starts_with_its_input_check(path):
    broken = entry_violations(path)
    assert not broken, "\n".join(broken)


def test_the_rule_sees_a_missing_check(tmp_path):
    """The rule fails on an entry whose check call is removed: from roi_pool's CPU backward (in
    the kernel file), and from the forward both backends share (in csrc/roi_pool.h)."""
    kernel = CSRC / "cpu" / "roi_pool_kernel.cpp"
    source = kernel.read_text()
    call = re.search(r"\n\s*check_roi_pool_backward_inputs\([^;]*\);", source)
    assert call is not None
    broken = tmp_path / "cpu" / "roi_pool_kernel.cpp"
    broken.parent.mkdir()
    broken.write_text(source[: call.start()] + source[call.end() :])
    assert any("_roi_pool_backward:" in v for v in entry_violations(broken, CSRC / "roi_pool.h"))

    header = (CSRC / "roi_pool.h").read_text()
    call = re.search(r"\n\s*check_roi_pool_inputs\(input[^;]*\);", header)
    assert call is not None
    broken_header = tmp_path / "roi_pool.h"
    broken_header.write_text(header[: call.start()] + header[call.end() :])
    assert any(v.startswith("roi_pool:") for v in entry_violations(kernel, broken_header))
    assert not entry_violations(kernel)


def test_cuda_sources_include_nothing_from_cpu():
    """What both backends share lives in csrc/common (or csrc/<op>.h): csrc/cuda never reaches
    into csrc/cpu, so the two cannot silently depend on each other's internals."""
    cuda = sorted((CSRC / "cuda").glob("*.cu")) + sorted((CSRC / "cuda").glob("*.cuh"))
    reaching = [
        f"{p.name}: {m.group(0)}"
        for p in cuda
        for m in re.finditer(r"#\s*include\s*\"[^\"]*\bcpu/[^\"]*\"", p.read_text())
    ]
    assert not reaching, "\n".join(reaching)
