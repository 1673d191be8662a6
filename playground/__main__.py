"""`python -m playground [options]`: the same as `python -m bot playground [options]`."""

from __future__ import annotations

import sys

from bot.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["playground", *sys.argv[1:]]))
