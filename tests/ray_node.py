"""``ray`` (the command line) for a test cluster that stays on this machine's loopback interface.

Run with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the environment, so that every Ray process binds to
127.0.0.1. Ray then refuses to add a node to a cluster (multi-node needs that switch on) and, with it on,
rewrites 127.0.0.1 to the machine's network address. This entry point lifts both for its own ``ray start``
alone: ``python ray_node.py start --address 127.0.0.1:PORT ...``.
"""

import sys

from ray._private import ray_constants, services

ray_constants.ENABLE_RAY_CLUSTER = True
services.resolve_ip_for_localhost = lambda host: host

if __name__ == "__main__":
    from ray.scripts.scripts import main

    sys.argv = ["ray", *sys.argv[1:]]
    main()
