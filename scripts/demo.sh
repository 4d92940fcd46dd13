#!/usr/bin/env bash
# Set up (first time) and run the default experiment: `myopia demo` on built-in defaults.
. "$(dirname "$0")/env.sh"
exec myopia demo "$@"
