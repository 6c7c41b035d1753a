"""Pure deterministic core of bakong-sim: ids, amounts, codec, crypto, transactions,
commands, permissions, state transition, blocks and the key-value store.

Nothing in this package reads a clock, a socket or the environment.
"""
