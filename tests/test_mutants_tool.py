"""tools/mutants.py, the mutation tester of `make mutants`, stays usable as csrc changes: every
curated mutant still names a line that exists once, every target file has tests mapped to it,
and the equivalent-mutant file parses. (Running the mutants is `make mutants`, not this.)"""

import pytest

from tools import mutants


def test_every_curated_mutant_applies_to_the_current_sources():
    curated = mutants.curated_mutants()
    assert len(curated) >= 25
    for m in curated:
        assert m.mutated != m.original, m.label()
        assert (mutants.REPO / m.path).read_text().split("\n")[m.line - 1] == m.original


def test_a_stale_curated_line_is_refused(tmp_path):
    stale = tmp_path / "curated.txt"
    stale.write_text("csrc/cpu/parallel.h | no such code here | x\n")
    with pytest.raises(SystemExit, match="must occur exactly once"):
        mutants.curated_mutants(stale)


def test_every_target_file_has_covering_tests():
    files = mutants.target_files(None)
    assert any(f.startswith("csrc/cuda/") for f in files)
    for path in files:
        builds, args = mutants.coverage(path)
        assert builds and args, path


def test_equivalent_entries_parse():
    for key, reason in mutants.load_equivalent().items():
        assert key.count(" | ") == 2 and reason.strip(), key
