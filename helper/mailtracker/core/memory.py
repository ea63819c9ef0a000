"""A worker's memory of what repeats (tokens and click URLs that verified, a hit line's tail
per client): a dict of a bounded number of entries, emptied when full. Emptying costs one
cold lookup per entry afterwards, and keeps the bound without an order to maintain."""


class Memory(dict):
    """A dict of at most ``size`` entries (``size`` 0: it keeps nothing). Read it as a dict;
    ``keep`` adds an entry, emptying it first when it is full."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def keep(self, key, value) -> None:
        if not self.size:
            return
        if len(self) >= self.size:
            self.clear()
        self[key] = value
