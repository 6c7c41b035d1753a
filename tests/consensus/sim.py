"""A deterministic, seeded simulator of N consensus state machines on a virtual clock.

The network delays, loses, duplicates and reorders messages and can be partitioned.
`heal()` is GST: every message held back by a partition or lost so far is delivered and
the network is timely from then on (the paper's gossip assumption). A crashed node
keeps only what it persisted (its SignState and decided blocks) and restarts from them.
Byzantine validators run an honest machine and then rewrite or multiply what it sends.
Like the node's gossip layer, a node buffers messages for a later height until it gets
there.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace

from consensus import (
    Action,
    BroadcastProposal,
    BroadcastVote,
    ConsensusParams,
    ConsensusState,
    Context,
    Decide,
    Event,
    Evidence,
    PersistSignState,
    Proposal,
    ProposalReceived,
    ProposalValue,
    RequestProposal,
    ScheduleTimeout,
    SignedMessage,
    SignState,
    Start,
    TimeoutFired,
    ValidatorSet,
    Vote,
    VoteReceived,
    new_state,
    sign_proposal,
    sign_vote,
    step,
    verify_commit,
)
from consensus.messages import NIL
from ledger.block import Commit
from ledger.crypto import PrivateKey, sha256

CHAIN_ID = "sim-chain"
FAST_PARAMS = ConsensusParams(
    propose_ms=60,
    propose_delta_ms=30,
    prevote_ms=40,
    prevote_delta_ms=20,
    precommit_ms=40,
    precommit_delta_ms=20,
)
BEHAVIOURS = (
    "silent",
    "equivocating_proposer",
    "double_voter",
    "bad_signatures",
    "random_votes",
    "far_rounds",
)


def make_keys(n: int) -> list[PrivateKey]:
    return [PrivateKey(sha256(b"sim validator %d" % i)) for i in range(n)]


def make_validator_set(keys: list[PrivateKey]) -> ValidatorSet:
    return ValidatorSet.of([(f"bank{i}", key.public_key) for i, key in enumerate(keys)])


@dataclass
class Node:
    index: int
    key: PrivateKey
    behaviour: str | None = None
    state: ConsensusState | None = None
    incarnation: int = 0
    persisted: SignState | None = None
    decisions: dict[int, bytes] = field(default_factory=dict)
    decided_rounds: dict[int, int] = field(default_factory=dict)
    future: dict[int, list[SignedMessage]] = field(default_factory=dict)
    missed: list[SignedMessage] = field(default_factory=list)
    inbox: list[SignedMessage] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def is_honest(self) -> bool:
        return self.behaviour is None

    @property
    def height(self) -> int:
        return len(self.decisions) + 1


class Simulator:
    def __init__(
        self,
        n: int,
        seed: int,
        byzantine: dict[int, str] | None = None,
        params: ConsensusParams = FAST_PARAMS,
        delay: tuple[int, int] = (1, 15),
        loss: float = 0.0,
        duplication: float = 0.0,
        crash_on_persist: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.keys = make_keys(n)
        self.validators = make_validator_set(self.keys)
        self.params = params
        self.delay = delay
        self.loss = loss
        self.duplication = duplication
        self.crash_on_persist = crash_on_persist
        self.now = 0
        self.seq = 0
        self.queue: list[tuple[int, int, int, int, object]] = []
        self.groups: list[set[int]] | None = None
        self.held: list[tuple[int, SignedMessage]] = []
        self.valid_blocks: set[bytes] = set()
        self.signed: dict[tuple[bytes, int, int, str], bytes] = {}
        self.messages_sent = 0
        self.messages_signed = 0
        self.relayed: set[bytes] = set()
        self.nodes = [Node(i, key, (byzantine or {}).get(i)) for i, key in enumerate(self.keys)]
        self.byzantine_keys = {node.key.public_key for node in self.nodes if not node.is_honest}
        for node in self.nodes:
            if node.behaviour != "silent":
                self.boot(node)

    # Network control

    def partition(self, *groups: set[int]) -> None:
        self.groups = [set(group) for group in groups]

    def heal(self) -> None:
        """GST: deliver everything held back and keep the network timely from now on."""
        self.groups = None
        self.loss = 0.0
        held, self.held = self.held, []
        for dst, message in held:
            self.send(dst, message)

    def crash(self, index: int) -> None:
        """Lose everything but what was persisted; peers will gossip the rest again,
        its own messages of the height included."""
        node = self.nodes[index]
        node.state = None
        node.incarnation += 1
        node.future = {}
        node.missed.extend(node.inbox)
        node.inbox = []

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        if node.state is not None or node.behaviour == "silent":
            return
        self.boot(node)
        missed, node.missed = node.missed, []
        for message in missed:
            self.send(index, message)

    # Running

    def run(self, until_ms: int, heights: int | None = None) -> None:
        """Process events up to `until_ms`, or until every honest node decided `heights`."""
        while self.queue and self.queue[0][0] <= until_ms:
            if heights is not None and self.all_decided(heights):
                return
            time, _, dst, incarnation, item = heapq.heappop(self.queue)
            self.now = time
            node = self.nodes[dst]
            if isinstance(item, Vote | Proposal):
                if node.state is None and node.behaviour != "silent":
                    node.missed.append(item)
                elif node.state is not None:
                    self.receive(node, item)
            elif item == "restart":
                self.restart(dst)
            elif node.state is not None and incarnation == node.incarnation:
                assert isinstance(item, ProposalValue | TimeoutFired)
                self.feed(node, item)
        self.now = max(self.now, until_ms)

    def all_decided(self, heights: int) -> bool:
        return all(len(node.decisions) >= heights for node in self.nodes if node.is_honest)

    # Checks

    def get_honest_decisions(self) -> dict[int, set[bytes]]:
        decided: dict[int, set[bytes]] = {}
        for node in self.nodes:
            if node.is_honest:
                for height, value in node.decisions.items():
                    decided.setdefault(height, set()).add(value)
        return decided

    def assert_safe(self) -> None:
        for height, values in self.get_honest_decisions().items():
            assert len(values) == 1, f"height {height}: honest validators decided {values}"
            assert values <= self.valid_blocks

    # Internals

    def boot(self, node: Node) -> None:
        context = Context(CHAIN_ID, node.key, self.params, lambda _height: self.validators)
        node.state = new_state(context, node.height, node.persisted)
        self.feed(node, Start())

    def schedule(self, delay: int, dst: int, item: object) -> None:
        self.seq += 1
        incarnation = self.nodes[dst].incarnation
        heapq.heappush(self.queue, (self.now + delay, self.seq, dst, incarnation, item))

    def send(self, dst: int, message: SignedMessage) -> None:
        self.schedule(self.rng.randint(*self.delay), dst, message)

    def broadcast(self, src: int, message: SignedMessage, to: list[int] | None = None) -> None:
        for dst in range(len(self.nodes)) if to is None else to:
            if dst == src:
                continue
            self.messages_sent += 1
            if self.is_cut(src, dst) or self.rng.random() < self.loss:
                self.held.append((dst, message))
                continue
            self.send(dst, message)
            if self.rng.random() < self.duplication:
                self.send(dst, message)

    def is_cut(self, src: int, dst: int) -> bool:
        if self.groups is None:
            return False
        return not any(src in group and dst in group for group in self.groups)

    def receive(self, node: Node, message: SignedMessage) -> None:
        assert node.state is not None
        self.relay(node, message)
        node.inbox.append(message)
        if message.height > node.state.height:
            node.future.setdefault(message.height, []).append(message)
            return
        if isinstance(message, Vote):
            self.feed(node, VoteReceived(message))
        else:
            valid = message.block_hash in self.valid_blocks
            self.feed(node, ProposalReceived(message, valid))

    def relay(self, node: Node, message: SignedMessage) -> None:
        """Gossip: what a correct node receives, every correct node receives. Honest
        messages already go to everyone; a Byzantine one is passed on once."""
        signer = message.validator if isinstance(message, Vote) else message.proposer
        encoded = message.encode()
        if node.is_honest and signer in self.byzantine_keys and encoded not in self.relayed:
            self.relayed.add(encoded)
            self.broadcast(node.index, message)

    def feed(self, node: Node, event: Event) -> None:
        assert node.state is not None
        height = node.state.height
        node.state, actions = step(node.state, event)
        for action in actions:
            self.run_action(node, action)
            if isinstance(action, PersistSignState) and self.is_crash_now(node):
                return
        if node.state.height != height:
            pending = node.future.pop(node.state.height, [])
            for i, message in enumerate(pending):
                if node.state is None:
                    node.missed.extend(pending[i:])
                    return
                self.receive(node, message)

    def is_crash_now(self, node: Node) -> bool:
        """Crash between persisting a signature and sending it; restart a little later."""
        if not node.is_honest or self.rng.random() >= self.crash_on_persist:
            return False
        self.crash(node.index)
        self.schedule(self.rng.randint(5, 100), node.index, "restart")
        return True

    def run_action(self, node: Node, action: Action) -> None:
        match action:
            case PersistSignState(sign_state):
                node.persisted = sign_state
            case BroadcastProposal(proposal):
                self.messages_signed += 1
                node.inbox.append(proposal)
                self.record_signature(node, proposal, "proposal")
                self.send_proposal(node, proposal)
            case BroadcastVote(vote):
                self.messages_signed += 1
                node.inbox.append(vote)
                self.record_signature(node, vote, vote.vote_type.name)
                self.send_vote(node, vote)
            case RequestProposal(height, round_):
                block = self.make_block(height, round_, node.index)
                self.schedule(
                    self.rng.randint(0, 3), node.index, ProposalValue(height, round_, block)
                )
            case ScheduleTimeout(height, round_, step_, duration):
                self.schedule(duration, node.index, TimeoutFired(height, round_, step_))
            case Decide(height, round_, block_hash, commit):
                self.apply_decision(node, height, round_, block_hash, commit)
            case Evidence():
                node.evidence.append(action)

    def make_block(self, height: int, round_: int, proposer: int) -> bytes:
        block = sha256(b"block %d %d %d %d" % (height, round_, proposer, self.rng.getrandbits(32)))
        self.valid_blocks.add(block)
        return block

    def apply_decision(
        self, node: Node, height: int, round_: int, block_hash: bytes, commit: Commit
    ) -> None:
        assert height == node.height, f"node {node.index} decided {height} at {node.height}"
        verify_commit(self.validators, CHAIN_ID, height, block_hash, commit)
        node.decisions[height] = block_hash
        node.inbox = [message for message in node.inbox if message.height > height]
        node.decided_rounds[height] = round_

    def record_signature(self, node: Node, message: SignedMessage, kind: str) -> None:
        """Crash-restart must never make an honest key sign two roots for one step."""
        if not node.is_honest:
            return
        root = message.compute_root(CHAIN_ID)
        slot = (node.key.public_key, message.height, message.round, kind)
        known = self.signed.setdefault(slot, root)
        assert known == root, f"node {node.index} double-signed {slot[1:]}"

    # Byzantine behaviours

    def send_proposal(self, node: Node, proposal: Proposal) -> None:
        if node.behaviour == "equivocating_proposer":
            other = self.make_block(proposal.height, proposal.round, node.index)
            second = sign_proposal(
                node.key, CHAIN_ID, proposal.height, proposal.round, other, proposal.valid_round
            )
            self.split_send(node.index, proposal, second)
        elif node.behaviour == "bad_signatures":
            self.broadcast(node.index, corrupt(proposal))
        else:
            self.broadcast(node.index, proposal)

    def send_vote(self, node: Node, vote: Vote) -> None:
        behaviour = node.behaviour
        if behaviour == "double_voter":
            other = NIL if vote.block_hash != NIL else self.random_hash()
            self.split_send(node.index, vote, self.resign(node, vote, other))
        elif behaviour == "bad_signatures":
            self.broadcast(node.index, corrupt(vote))
        elif behaviour == "random_votes":
            self.broadcast(node.index, self.resign(node, vote, self.random_hash()))
        elif behaviour == "far_rounds":
            self.broadcast(node.index, vote)
            far = vote.round + self.rng.choice([1, 2, 50, 10**6])
            self.broadcast(
                node.index, sign_vote(node.key, CHAIN_ID, vote.vote_type, vote.height, far, NIL)
            )
        else:
            self.broadcast(node.index, vote)

    def split_send(self, src: int, first: SignedMessage, second: SignedMessage) -> None:
        """Each peer gets one of the two conflicting messages, or both in random order."""
        for dst in range(len(self.nodes)):
            choice = self.rng.randrange(3)
            messages = [first] if choice == 0 else [second] if choice == 1 else [second, first]
            for message in messages:
                self.broadcast(src, message, [dst])

    def resign(self, node: Node, vote: Vote, value: bytes) -> Vote:
        return sign_vote(node.key, CHAIN_ID, vote.vote_type, vote.height, vote.round, value)

    def random_hash(self) -> bytes:
        return self.rng.randbytes(32)


def corrupt(message: SignedMessage) -> SignedMessage:
    signature = bytes([message.signature[0] ^ 1]) + message.signature[1:]
    return replace(message, signature=signature)
