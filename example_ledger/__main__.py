"""``python -m example_ledger [STORE_URL]`` runs the demo."""

from __future__ import annotations

import sys

from example_ledger.demo import DEFAULT_URL, run

if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL)
