#!/bin/sh
# Runs as the student inside the container, in their home (hooks.as_user), as the school's
# /home/admin/start/as-user.sh did: the school's notebooks copied from the shared data
# (~/data, data.shared) once, never over the student's own changes.
set -eu
if [ ! -e "$HOME/growth-school" ] && [ -d "$HOME/data/notebooks" ]; then
    cp -R "$HOME/data/notebooks" "$HOME/growth-school"
    echo "copied the school's notebooks into ~/growth-school"
fi
