"""Entry point: ``python apps/deploy/neonet_app ...`` (as a MAP runs ``python3 /opt/holoscan/app``) or
``python -m neonet_app ...`` from ``apps/deploy``."""

import os
import resource
import sys
from pathlib import Path

# Holoscan wants a 32 MiB stack (it warns below that and can crash in deep calls). The main thread's
# stack limit is fixed when the process starts, so raise the soft limit and start again, once.
_STACK = 32 * 1024 * 1024
_REEXEC = "NEONET_APP_STACK_SET"
_soft, _hard = resource.getrlimit(resource.RLIMIT_STACK)
if _soft != resource.RLIM_INFINITY and _soft < _STACK and os.environ.get(_REEXEC) != "1":
    if _hard == resource.RLIM_INFINITY or _hard >= _STACK:
        resource.setrlimit(resource.RLIMIT_STACK, (_STACK, _hard))
        os.environ[_REEXEC] = "1"
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])

# the app's modules import each other by top-level name (app, neonet_operators), as in the SDK's examples,
# so the folder works both as a package (-m neonet_app) and as the MAP's /opt/holoscan/app
sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
