"""What the benchmark scripts share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit_json(results: dict[str, Any], path: Path | None) -> None:
    """Print the results, and write them to `path` (the --json option) when given."""
    print(json.dumps(results, indent=2))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
