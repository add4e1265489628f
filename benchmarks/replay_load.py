"""What a lab rerun pays to replay runs: parsing the run files vs copying them out of the cache.

    python benchmarks/replay_load.py [--repeat 5]

Every click on the Degradation lab reruns its script, and the replay picker hands the picked
runs to the figures. Before, each rerun parsed their JSON (``explorer.store.runs.load_run``); now
``explorer.ui.lab.loaded_run`` (``st.cache_data``, keyed by path, mtime and size) parses a
file once and each rerun gets a copy out of the cache. Takes the three shipped 35,000-step
runs (the "Fig. 6 at the paper's width" button), prints the best of ``--repeat`` for each
way and their ratio. Check ``uptime`` first. Streamlit warns once that no runtime is found:
a bare script has no server, and the cache it uses is the same, in memory.

Measured (2 cores, idle, 14.6 MB): 0.181 s parsing, 0.043 s from the cache, 4.2×.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.paper.fig6 import PAPER_WIDTH_FIG6_RUNS  # noqa: E402
from explorer.store.runs import list_runs, load_run  # noqa: E402


def best_seconds(load, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        load()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from explorer.ui.lab import loaded_run


    paths = [path for path in list_runs() if path.stem in PAPER_WIDTH_FIG6_RUNS]
    parsed = best_seconds(lambda: [load_run(path) for path in paths], args.repeat)
    [loaded_run(path) for path in paths]  # fills the cache, as the first rerun does
    cached = best_seconds(lambda: [loaded_run(path) for path in paths], args.repeat)
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    print(f"{len(paths)} runs, {megabytes:.1f} MB of JSON")
    print(f"parsed on every rerun:  {parsed:.3f} s")
    print(f"copied out of the cache: {cached:.3f} s")
    print(f"ratio: {parsed / cached:.1f}x")


if __name__ == "__main__":
    main()
