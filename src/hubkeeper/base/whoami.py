"""Who this process acts as: the one read of the effective uid in hubkeeper.

A verb does not ask it: the Hub it is given says (`Hub.euid`, `Hub.is_root`), and a test
opens the Hub with `euid=` to be root or not. What is asked here is about this very process
(who owns a file we made, a lock we hold, the server end of a socket we opened).
"""

from __future__ import annotations

import os


def effective_uid() -> int:
    return os.geteuid()
