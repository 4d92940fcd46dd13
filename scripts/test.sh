#!/usr/bin/env bash
# Set up (first time) and run the test suite.
. "$(dirname "$0")/env.sh"
exec python -m pytest "$@"
