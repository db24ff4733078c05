#!/bin/sh
# hooks.as_root: runs as root before the server, with the student's home mounted. On a
# cluster it changes the home volume only (the server's container is another one).
set -eu
mkdir -p "$HUBKEEPER_HOME/.config"
chown 1000:100 "$HUBKEEPER_HOME/.config"
