"""Running the real cgnat-setup program (python3 -m installer) from the source tree."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cgnat_setup(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "installer", *map(str, args)], cwd=REPO,
                          input=stdin, capture_output=True, text=True)
