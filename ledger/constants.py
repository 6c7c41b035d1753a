"""Values that never change across networks. Per-network values come from genesis."""

from typing import Final

# Domain separation tags: every signature covers sha256(DOMAIN || sha256(payload)).
DOMAIN_TX: Final = b"bakong-sim/tx/v1"
DOMAIN_PROPOSAL: Final = b"bakong-sim/proposal/v1"
DOMAIN_VOTE: Final = b"bakong-sim/vote/v1"
DOMAIN_HANDSHAKE: Final = b"bakong-sim/handshake/v1"

HASH_SIZE: Final = 32
PUBLIC_KEY_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64

MAX_AMOUNT: Final = 2**63 - 1
MAX_MEMO_BYTES: Final = 256
MAX_COMMANDS_PER_TX: Final = 64
MAX_TX_BYTES: Final = 16 * 1024
MAX_BLOCK_BYTES: Final = 64 * 1024 * 1024

CENTRAL_BANK_CODE: Final = "nbc"
OPERATOR_NAME: Final = "admin"

TX_VERSION: Final = 1
# 2: the tx root commits to whole signed txs (wire hashes), not to bodies; a block of
# version 1 is refused by the strict version check, never misread.
BLOCK_VERSION: Final = 2
