#!/bin/sh
# Run the driver contract suite and the virtualbox driver tests against the REAL VirtualBox.
# Needs the machine OS build (python3 isos/build.py, or MACHINE_OS_DIR pointing at one).
set -eu
cd "$(dirname "$0")/../.."
. /opt/machine-venv/bin/activate
MACHINE_CONTRACT_REAL=virtualbox pytest -v tests/contract -k virtualbox "$@"
