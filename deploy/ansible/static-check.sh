#!/bin/sh
# static-check.sh BIN_DIR -- the deployment's fast checks (ansible-lint,
# yamllint, every config of the example inventory rendered and passed through
# the daemons' -t); tests/integration/deploy-static runs it.  The checks live
# in tests/deploy/static.sh.
here=$(cd "$(dirname "$0")" && pwd)
MINICDN_BIN=${1:-$here/../../build/bin} exec "$here/../../tests/deploy/static.sh"
