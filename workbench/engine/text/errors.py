"""Walking an exception's causes safely."""

from __future__ import annotations

from collections.abc import Iterator


def exception_chain(exc: BaseException | None, limit: int = 200) -> Iterator[BaseException]:
    """Every exception reachable from `exc` (causes, contexts, groups' members), each once.

    Chains can loop: Starlette re-raises an error with `__context__` pointing at the group that holds
    it. A walk that does not remember what it has seen never ends (it froze the embedded server's event
    loop at 100 % CPU, and with it every later request).
    """
    seen: set[int] = set()
    stack = [exc]
    while stack and len(seen) < limit:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend(getattr(e, "exceptions", None) or ())
        stack.append(e.__cause__)
        stack.append(e.__context__)
