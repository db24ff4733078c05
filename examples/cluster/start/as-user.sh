#!/bin/sh
# hooks.as_user: runs as the student in their home before the server; never over their files.
set -eu
[ -e "${HOME}/README.md" ] || printf 'Welcome to %s, %s\n' "$HUBKEEPER_HUB" "$HUBKEEPER_USER" > "${HOME}/README.md"
