"""Tendermint BFT consensus as a pure state machine: events in, actions out.

The node constructs a state with `new_state(Context(...), height, restored_sign_state)`,
feeds `Start()` and then every peer message, timeout and built block through `step`,
and runs the returned actions in order (persist, send, apply).

`check_proposal(state, proposal)` is the machine's own check of a proposal's height,
round, proposer and signature: the node runs it before it touches the proposal's block.

Messages for another height are dropped (counted as `wrong_height`): like peers' gossip,
the node keeps those for the next height and feeds them again after `Decide`. After a
restart the machine may re-send a stored proposal instead of the block just built, so
the node keeps the body of every block it proposed at the current height.
"""

from consensus.actions import (
    Action,
    BroadcastProposal,
    BroadcastVote,
    Decide,
    Evidence,
    PersistSignState,
    RequestProposal,
    ScheduleTimeout,
)
from consensus.commit import verify_commit
from consensus.errors import ConsensusError, InvalidCommit, InvalidValidatorSet
from consensus.events import (
    Event,
    ProposalReceived,
    ProposalValue,
    Start,
    TimeoutFired,
    VoteReceived,
)
from consensus.machine import check_proposal, new_state, step
from consensus.messages import (
    NIL,
    Proposal,
    SignedMessage,
    Vote,
    VoteType,
    sign_proposal,
    sign_vote,
)
from consensus.params import ConsensusParams, Step
from consensus.signstate import SignState
from consensus.state import ConsensusState, Context
from consensus.validators import Validator, ValidatorProvider, ValidatorSet

__all__ = [
    "NIL",
    "Action",
    "BroadcastProposal",
    "BroadcastVote",
    "ConsensusError",
    "ConsensusParams",
    "ConsensusState",
    "Context",
    "Decide",
    "Event",
    "Evidence",
    "InvalidCommit",
    "InvalidValidatorSet",
    "PersistSignState",
    "Proposal",
    "ProposalReceived",
    "ProposalValue",
    "RequestProposal",
    "ScheduleTimeout",
    "SignState",
    "SignedMessage",
    "Start",
    "Step",
    "TimeoutFired",
    "Validator",
    "ValidatorProvider",
    "ValidatorSet",
    "Vote",
    "VoteReceived",
    "VoteType",
    "check_proposal",
    "new_state",
    "sign_proposal",
    "sign_vote",
    "step",
    "verify_commit",
]
