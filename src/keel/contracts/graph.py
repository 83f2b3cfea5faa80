"""Dependencies between datasets (pure): which dataset reads which, and whether that loops.

A GDP mapping may read another GDP entity (``MappingPlan.tables``); a loop there (gdp.a reads
gdp.b reads gdp.a) could never be built, so registering it is refused with the loop spelt out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency loop as the path that walks it (``[a, b, a]``; ``[a, a]`` when a reads itself),
    or None. ``edges`` maps each dataset to the datasets it reads; names only read are leaves.

    The search visits names in sorted order, so the same graph always reports the same loop.
    """
    graph = {node: sorted(set(targets)) for node, targets in edges.items()}
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path, on_path = [root], {root}
        stack = [iter(graph.get(root, ()))]
        while stack:
            following = next(stack[-1], None)
            if following is None:  # every dependency of the node on top is explored
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif following in on_path:
                return [*path[path.index(following) :], following]
            elif following not in done:
                path.append(following)
                on_path.add(following)
                stack.append(iter(graph.get(following, ())))
    return None
