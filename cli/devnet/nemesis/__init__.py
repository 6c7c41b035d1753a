"""The nemesis (issue 15, parts B and C): nodes on "hosts" made of Linux network
namespaces on one machine, a Jepsen-style bank workload, a schedule of faults
(partitions, kill -9, pauses, clock skew, full disks), a checker and its report.

    netns     the namespaces, bridge and veth pairs of one run; always removed again
    cluster   a --hosts testnet whose nodes run inside those namespaces
    workload  the bank test's clients: transfers through every node, reads at one height
    faults    the schedule and each fault's start and heal
    checker   pure checks over the recorded history and the nodes' chains
    plot      the timeline PNG (pypng, no matplotlib)
    runner    `scripts/nemesis`: all of the above, the report directory, the exit status

A dev tool that drives nodes from outside, like cli/devnet/testnet.py: node/ knows
nothing of it (only `BAKONG_TEST_CLOCK_SKEW_MS` in test mode, see docs/reliability.md).
"""
