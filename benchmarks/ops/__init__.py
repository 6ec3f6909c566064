"""One module per op family; importing this package registers every benchmark op.

To add a family (NMS, RoIAlign, ...), drop a module here that calls
``benchmarks.registry.register(OpBench(...))`` at import time.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")
