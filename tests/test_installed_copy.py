"""The suite tests the frcnn_fast that holds the extension, also when it runs from a checkout
against an installed copy (``pip install .``, then ``python -m pytest tests``), which is how a
user with a GPU and their own install verifies the package. tests/conftest.py chooses the
copy; these tests keep that choice from silently breaking again."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, source_tree_is_built

import frcnn_fast
import reference


def test_frcnn_fast_is_the_copy_with_the_extension():
    package = Path(frcnn_fast.__file__).resolve().parent
    # parent first: the extension may be a link (resolving it would leave the package)
    assert Path(frcnn_fast._C.__file__).parent.resolve() == package
    if not source_tree_is_built():
        assert package != REPO_ROOT / "frcnn_fast", "the checkout's unbuilt frcnn_fast was imported"
        # installed, reference/ is the subpackage (an editable install maps it to the checkout's)
        assert Path(frcnn_fast.reference.__file__).parent.resolve() == package / "reference"
    # `import reference` is the checkout's NumPy reference, whichever frcnn_fast is tested.
    assert Path(reference.__file__).resolve().parent == REPO_ROOT / "reference"


def _copy_package(dest):
    """frcnn_fast laid out as `pip install .` installs it, the extension linked, not copied."""
    package = Path(frcnn_fast.__file__).resolve().parent
    shutil.copytree(
        package,
        dest,
        ignore=shutil.ignore_patterns("__pycache__", "_C*", "reference"),
    )
    shutil.copytree(REPO_ROOT / "reference", dest / "reference")
    so = Path(frcnn_fast._C.__file__).resolve()
    (dest / so.name).symlink_to(so)


def test_suite_collects_and_imports_an_installed_copy(tmp_path):
    """A checkout without _C next to an installed copy: the whole suite must collect (every
    test module imports frcnn_fast) and the test above must pass there."""
    checkout = tmp_path / "checkout"
    site = tmp_path / "site"
    _copy_package(site / "frcnn_fast")
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "_C*")
    for part in ("tests", "reference", "frcnn_fast", "benchmarks", "tools"):
        shutil.copytree(REPO_ROOT / part, checkout / part, ignore=ignore)
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "test_frcnn_fast_is_the_copy_with_the_extension",
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "1 passed" in proc.stdout, proc.stdout[-2000:]
