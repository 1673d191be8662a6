"""`python bench/queue.py [--sizes ...]`: bench/dispatch.py under the name issue #21 gives it.

A script's own folder comes first on sys.path, so while any script in bench/ runs, this file is what
`import queue` finds, and asyncio, logging and concurrent.futures all import the standard library's
queue. Imported under that name, this file puts the standard library's module in its place: the import
system hands back whatever sys.modules holds for the name once the file has run.
"""

import sys
import sysconfig
from pathlib import Path

if __name__ == "__main__":
    import runpy

    runpy.run_path(str(Path(__file__).with_name("dispatch.py")), run_name="__main__")
else:
    import importlib.util

    _spec = importlib.util.spec_from_file_location(__name__, Path(sysconfig.get_path("stdlib")) / "queue.py")
    assert _spec is not None and _spec.loader is not None  # the standard library always has queue.py
    _stdlib_queue = importlib.util.module_from_spec(_spec)
    sys.modules[__name__] = _stdlib_queue
    _spec.loader.exec_module(_stdlib_queue)
