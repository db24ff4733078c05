"""bench/stormbench.py's arithmetic and plot, on a made-up run (the benchmark itself needs
root and minutes; its figures are in docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

from bench.stormbench import plot, storm_summary


def student(name: str, arrival: float, first_result: float | None) -> dict:
    return {"user": name, "arrival": arrival, "login": 0.1, "spawn": 1.0,
            "first_result": first_result,
            "error": None if first_result is not None else "server start failed",
            "stop_error": None}


def test_summary_and_lower_bound() -> None:
    records = [student("a", 0.0, 4.0), student("b", 0.5, 6.0), student("c", 1.0, None)]
    summary = storm_summary({"records": records, "makespan": 12.0, "cpu_seconds": 16.0},
                            cpus=2)
    assert (summary["ok"], summary["failures"]) == (2, 1)
    assert summary["lower_bound"] == 8.0  # 16 CPU-seconds on 2 CPUs
    assert summary["makespan_over_bound"] == 1.5
    assert summary["cpu_seconds_per_student"] == 8.0  # per student with a result
    assert summary["first_result"]["max"] == 6.0


def test_the_plot_is_drawn(tmp_path: Path) -> None:
    def storm(records: list[dict]) -> dict:
        return storm_summary({"records": records, "makespan": 10.0, "cpu_seconds": 12.0}, 2)

    report = {"started": "2026-11-24T00:00:00", "machine": {"nproc": 2}, "targets": {
        "stock": {"storms": {"3": storm([student("a", 0, 9.0), student("b", 1, None),
                                         student("c", 2, 8.0)])}},
        "hubkeeper": {"storms": {"3": storm([student("a", 0, 3.0), student("b", 1, 4.0),
                                             student("c", 2, 5.0)])}}}}
    path = tmp_path / "storm.png"
    plot(report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
