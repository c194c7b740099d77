#!/bin/sh
# kiln watch as a container's entrypoint (a pod, a CI service, a small VM's container): keeps the
# training jobs of the configuration mounted at KILN_DIR (default /work) going. Arguments are
# passed to `kiln watch` (such as --once). The container needs what the state backend and the
# providers need (their credentials as environment variables or mounted files), as `kiln apply`
# does. See Containerfile beside this script.
set -eu
cd "${KILN_DIR:-/work}"
exec kiln watch --interval "${KILN_WATCH_INTERVAL:-5s}" "$@"
