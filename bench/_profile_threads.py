"""``python bench/_profile_threads.py OUT SCRIPT [ARGS]``: run SCRIPT under cProfile in every
thread (cProfile alone sees only the main thread; the gateway's patch pool and the site watch
run in others) and write the merged stats to OUT. Used by ``python -m bench command --profile``.
"""

import cProfile
import pstats
import runpy
import sys
import threading
from pathlib import Path

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()
_thread_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile()
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
    main_profile = cProfile.Profile()
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
