"""The real desktop app (``app.__main__.main``), started as its own process on
a bundle and a source, that prints every verdict the Inspect view receives
("shown ref") as it arrives; with ``--quit-after N`` it closes its window
after N verdicts (a clean run). Used by ``test_kill_during_live.py``."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    quit_after = None
    if "--quit-after" in argv:
        i = argv.index("--quit-after")
        quit_after = int(argv[i + 1])
        del argv[i:i + 2]
    from app.views.inspect import InspectView

    original = InspectView._on_result
    seen = [0]

    def on_result(self, r):  # noqa: ANN001 - the view's own slot, wrapped
        original(self, r)
        print(f"shown {r.frame_ref}", flush=True)
        seen[0] += 1
        if quit_after is not None and seen[0] >= quit_after:
            from PySide6.QtWidgets import QApplication

            self.window().close()
            QApplication.instance().quit()

    InspectView._on_result = on_result
    from app.__main__ import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
