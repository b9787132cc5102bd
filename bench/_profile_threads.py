"""``python bench/_profile_threads.py OUT SCRIPT [ARGS]``: run SCRIPT under cProfile in every
thread (cProfile alone sees only the main thread; the gateway's patch pool and the site watch
run in others) and write the merged stats to OUT. Used by ``python -m bench command --profile``.

Each thread is timed by its own CPU clock (``time.thread_time``), so the stats say where the
tool's CPU goes; time spent waiting on the network or a lock does not show (the wall-clock
breakdown is the command bench's own figures).
"""

import cProfile
import pstats
import runpy
import sys
import threading
import time
from pathlib import Path

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()
_thread_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile(time.thread_time)
    with _lock:
        _profiles.append(profile)
    profile.enable()
    try:
        _thread_run(self)
    finally:
        profile.disable()


def main() -> None:
    out, script, *args = sys.argv[1:]
    threading.Thread.run = _profiled_run
    main_profile = cProfile.Profile(time.thread_time)
    sys.argv = [script, *args]
    sys.path[0] = str(Path(script).resolve().parent)  # as if SCRIPT had been run itself
    main_profile.enable()
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit:
        pass
    finally:
        main_profile.disable()
        stats = pstats.Stats(main_profile)
        with _lock:
            others = list(_profiles)
        for profile in others:
            profile.disable()
            stats.add(profile)
        stats.dump_stats(out)


if __name__ == "__main__":
    main()
