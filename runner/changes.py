"""When files may have changed: a count that moves before and after every stretch of work that may
write project files (an agent's Write, Edit or Bash, a `run:` command, a CLI agent), in any job of
this process. A result computed from the files, such as a verify run, holds while the count is
where it was when the computation started.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

_counter = itertools.count(1)
_current = 0


def current() -> int:
    return _current


@contextmanager
def files_may_change() -> Iterator[None]:
    global _current
    _current = next(_counter)
    try:
        yield
    finally:
        _current = next(_counter)  # another job may have looked at the files meanwhile
