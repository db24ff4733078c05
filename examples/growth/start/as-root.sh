#!/bin/sh
# Runs as root inside the student's container before the server (hooks.as_root), as the
# school's /home/admin/start/as-root.sh did: changes to the container that the image does
# not have yet. The container's own /etc, never the host's.
set -eu
echo "GROWTH summer school 2020 -- container of $HUBKEEPER_USER ($HUBKEEPER_ENVIRONMENT)" \
    > /etc/motd
echo "prepared the container for $HUBKEEPER_USER"
