#!/bin/sh
# Runs as the student inside the container, in their home (hooks.as_user): fetch the
# school's notebooks once, never over the student's own changes.
set -eu
[ -d "$HOME/growth-school" ] || echo "clone the school's notebooks into ~/growth-school here"
