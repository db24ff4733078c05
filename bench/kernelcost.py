"""kernelcost: an IPython kernel started the normal way against one forked from a warm parent.

    .venv/bin/python bench/kernelcost.py [--runs 8]

Starts kernels through jupyter_client's AsyncKernelManager, as a single-user server does,
one at a time and alternating: `local-provisioner` (a new python per kernel) and
hubkeeper's `hubkeeper-forked` (proc/kernelfork.py; its parent started once before the runs
and reported apart). A start counts from start_kernel() until the kernel answers
kernel_info; its CPU is the kernel process's user+system time at that moment (/proc), plus,
for the manager's side, this process's own. The idle kernel's PSS (/proc/<pid>/smaps_rollup)
is read after a second of rest with all the run's kernels alive, so that forked kernels
share their parent's pages as they do in a server. Needs nothing but hubkeeper's venv.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no Pss line")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def start(provisioner: str) -> tuple[AsyncKernelManager, Any, dict[str, float]]:
    KernelProvisionerFactory.instance().default_provisioner_name = provisioner
    manager = AsyncKernelManager(kernel_name="python3")
    began, began_cpu = time.monotonic(), own_cpu()
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=120)
    pid = manager.provisioner.pid  # type: ignore[union-attr]
    return manager, client, {"wall": time.monotonic() - began, "kernel_cpu": cpu_seconds(pid),
                             "manager_cpu": own_cpu() - began_cpu, "pid": pid}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    runs = parser.parse_args().runs
    results: dict[str, list[dict[str, float]]] = {"local-provisioner": [], "hubkeeper-forked": []}
    alive: list[tuple[AsyncKernelManager, Any]] = []
    first = await start("hubkeeper-forked")  # starts the warm parent
    alive.append(first[:2])
    from hubkeeper.proc.kernelfork import PARENTS
    parent = next(iter(PARENTS.parents.values())).pid
    print(f"first forked kernel (parent started with it): wall {first[2]['wall']:.3f} s; "
          f"parent CPU {cpu_seconds(parent):.3f} s, parent PSS {pss_mib(parent):.1f} MiB")
    for _ in range(runs):
        for name in results:
            manager, client, numbers = await start(name)
            alive.append((manager, client))
            results[name].append(numbers)
    await asyncio.sleep(1)
    for rows in results.values():
        for row in rows:
            row["pss"] = pss_mib(int(row["pid"]))
    for name, rows in results.items():
        def median(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(row[key] for row in rows)
        print(f"{name:18} wall {median('wall'):.3f} s  kernel CPU {median('kernel_cpu'):.3f} s"
              f"  manager CPU {median('manager_cpu'):.3f} s  idle PSS {median('pss'):.1f} MiB"
              f"  (median of {len(rows)})")
    for manager, client in alive:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)


if __name__ == "__main__":
    asyncio.run(main())
