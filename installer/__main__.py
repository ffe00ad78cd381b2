"""python3 -m installer: cgnat-setup from a source checkout, as the packages' launcher runs it.

The packages carry Textual and tomli-w in their own vendor directory; a checkout has them in
build/vendor once `./build.sh` ran (or in the Python that runs this), and says so otherwise."""
import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "build" / "vendor"
if VENDOR.is_dir():
    sys.path.append(str(VENDOR))      # after the running Python's own packages

try:
    import tomli_w  # noqa: F401 - the one library the unattended path needs beyond Debian's
except ModuleNotFoundError:
    sys.exit("cgnat-setup: tomli-w is missing: run ./build.sh (it vendors it into build/vendor) "
             "or apt install python3-tomli-w")

from installer.cli import main  # noqa: E402

sys.exit(main())
