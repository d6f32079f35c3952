"""Test helper command: wait (up to 20 s) until a file exists; exit 1 if it never appears."""

import os
import sys
import time

deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
sys.exit(0 if os.path.exists(sys.argv[1]) else 1)
