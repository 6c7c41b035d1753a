"""The local development network, driven from outside its nodes: lay out a testnet home,
start its nodes as detached processes, watch and stop them."""
