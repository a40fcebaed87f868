"""PyInstaller's entry script for the frozen ``inspector-app``.

It only adds what a frozen program needs before the application starts:
``multiprocessing.freeze_support()`` makes a child process started with the
``spawn`` method (the Train view trains in one) run its task instead of a
second copy of the application. Everything else is ``app.__main__.main``.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.__main__ import main

    sys.exit(main())
