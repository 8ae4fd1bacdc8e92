"""Holoscan (imported with the SDK's operators by the in-process tests) wants a 32 MiB stack.

The application raises the limit itself and re-executes (see ``neonet_app/__main__.py``); the
test process cannot re-execute, but the main thread's stack may grow up to the soft limit in
force when it grows, so raising the soft limit here, before Holoscan is imported, is enough for
the in-process tests (equivalent to running pytest under ``ulimit -s 32768``).
"""

import resource

_STACK = 32 * 1024 * 1024
_soft, _hard = resource.getrlimit(resource.RLIMIT_STACK)
if _soft != resource.RLIM_INFINITY and _soft < _STACK and (_hard == resource.RLIM_INFINITY or _hard >= _STACK):
    resource.setrlimit(resource.RLIMIT_STACK, (_STACK, _hard))
