"""Dependency graphs, given as node -> the nodes it waits for: phases (`needs`) and jobs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in a graph given as node -> the nodes it waits for (as a path a -> b -> a), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if state.get(start):
            continue
        path, stack = [start], [iter(edges.get(start, ()))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif nxt not in edges or state.get(nxt) == 2:
                continue
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            else:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges.get(nxt, ())))
    return None


def topological_order(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Every node after the nodes it waits for (which must be acyclic), otherwise in the given order.
    Waits on nodes that are not in the graph are ignored."""
    order: list[str] = []
    seen: set[str] = set()
    for start in edges:
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(edges[start]))]
        while stack:
            node, waits = stack[-1]
            nxt = next(waits, None)
            if nxt is None:
                order.append(node)
                stack.pop()
            elif nxt in edges and nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, iter(edges[nxt])))
    return order
