"""
The writes that put a PVE firewall rule list in the wanted order, given PVE's position
semantics (BEHAVIOR.md 4.3): a new rule is inserted at position 0, ``moveto`` puts a rule
before the one at that index, and a delete moves the later rules up. Pure functions of the
lists of keys; the ``pvefw`` states carry the plan out.
"""


def longest_ordered(sequence):
    """Indices of a longest increasing subsequence of ``sequence`` (the rules left in place)."""
    tails, previous = [], [None] * len(sequence)
    for index, value in enumerate(sequence):
        low, high = 0, len(tails)
        while low < high:
            middle = (low + high) // 2
            if sequence[tails[middle]] < value:
                low = middle + 1
            else:
                high = middle
        previous[index] = tails[low - 1] if low else None
        tails[low : low + 1] = [index]
    kept, index = set(), tails[-1] if tails else None
    while index is not None:
        kept.add(index)
        index = previous[index]
    return kept


def plan(current, wanted, fixed=None):
    """
    The writes that turn the list of keys ``current`` into ``wanted`` (no key twice): delete
    the keys not wanted (from the end, so the positions before them hold), insert the missing
    keys (PVE puts a new rule at position 0: the last first), leave in place the ``fixed`` keys
    or else a longest run already in order, and move each other key right after its
    predecessor.
    Returns [("delete", pos, None) | ("insert", key, None) | ("move", pos, moveto)].
    """
    writes, simulated = [], list(current)
    for pos in reversed(range(len(simulated))):
        if simulated[pos] not in wanted or simulated.index(simulated[pos]) != pos:
            writes.append(("delete", pos, None))
            del simulated[pos]
    for key in reversed(wanted):  # the missing ones, at the top in their order
        if key not in simulated:
            writes.append(("insert", key, None))
            simulated.insert(0, key)
    if fixed is None:
        order = {key: index for index, key in enumerate(wanted)}
        fixed = {simulated[i] for i in longest_ordered([order[key] for key in simulated])}
    for index, key in enumerate(wanted):
        if key in fixed:
            continue
        pos = simulated.index(key)
        target = simulated.index(wanted[index - 1]) + 1 if index else 0
        if pos != target:
            writes.append(("move", pos, target))
            simulated.insert(target - 1 if pos < target else target, simulated.pop(pos))
    return writes
