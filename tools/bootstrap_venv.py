"""Create a virtual environment with pip, also where Debian's python3-venv is missing.

`make run` must work on a machine with only python3 and make. Debian splits ensurepip
into the python3-venv package, so `python3 -m venv` fails there; in that case the
environment is created without pip and pip is installed from its own wheel, fetched
from PyPI and checked against the published SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path

PYPI = "https://pypi.org/pypi/pip/json"


def _pip_wheel(dest: Path) -> Path:
    with urllib.request.urlopen(PYPI, timeout=60) as resp:
        meta = json.load(resp)
    wheel = next(u for u in meta["urls"] if u["packagetype"] == "bdist_wheel")
    # Mirrors may answer with addresses relative to the JSON document.
    with urllib.request.urlopen(urllib.parse.urljoin(PYPI, wheel["url"]), timeout=120) as resp:
        data = resp.read()
    if hashlib.sha256(data).hexdigest() != wheel["digests"]["sha256"]:
        raise SystemExit("downloaded pip wheel does not match its published SHA-256 digest")
    path = dest / wheel["filename"]
    path.write_bytes(data)
    return path


def main(target: str) -> None:
    path = Path(target)
    if (path / "bin" / "pip").exists():
        return  # already there; `make` only needs the packages refreshed
    try:
        venv.create(path, with_pip=True, clear=True)
        return
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"venv with pip failed ({e}); installing pip from PyPI instead", file=sys.stderr)
    venv.create(path, with_pip=False, clear=True)
    python = path / "bin" / "python"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_wheel(Path(tmp))
        # A pip wheel can run itself: python pip.whl/pip install pip.whl
        subprocess.run([str(python), f"{wheel}/pip", "install", "--no-index", str(wheel)], check=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".venv")
