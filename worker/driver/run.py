"""Entry point of the build driver: `python3 run.py ACTION REQUEST.json RESULT.json`.

This file runs inside the build container (or the host executor's throwaway environment) under the
target image's own Python, with nothing installed but this folder: pyproject-hooks and packaging
are copied beside it. It reads one JSON request, does one stage, and always writes one JSON
result: `{"ok": true, "data": {...}}` or `{"ok": false, "error": {"kind": ..., "message": ...}}`,
in the shapes `contract.py` names. The worker reads that file; it never parses this process's
output, which is only the log.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "vendor"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from contract import StageError  # type: ignore[import-not-found]  # a flat bundle
from egress import use_proxy  # type: ignore[import-not-found]
from steps import ACTIONS  # type: ignore[import-not-found]


def main(argv: list[str]) -> int:
    action, request_path, result_path = argv[1], Path(argv[2]), Path(argv[3])
    started = time.monotonic()
    try:
        request = json.loads(request_path.read_text())
        if request.get("egress"):
            print(f"network: through the worker's egress proxy ({use_proxy(request['egress'])})")
        handler = ACTIONS[action]
        data = handler(request)
        result: dict[str, object] = {"ok": True, "data": data}
    except StageError as exc:
        result = {"ok": False, "error": {"kind": exc.kind, "message": str(exc)}}
    except Exception as exc:
        traceback.print_exc()
        message = f"the driver crashed: {type(exc).__name__}: {exc}"
        result = {"ok": False, "error": {"kind": "internal", "message": message}}
    result["seconds"] = round(time.monotonic() - started, 3)
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True))
    tmp.replace(result_path)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
