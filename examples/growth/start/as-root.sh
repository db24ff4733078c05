#!/bin/sh
# Runs as root inside the student's container before the server (hooks.as_root).
set -eu
echo "preparing the container for $HUBKEEPER_USER"
