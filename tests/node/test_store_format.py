"""A node on a store of an older block format refuses to start with one error line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli.devnet.testnet import get_node_dir, init_testnet
from genesis.load import load_genesis_file, load_genesis_into
from ledger.block import NO_COMMIT_HASH, build_block
from ledger.codec import pack
from ledger.schema import encode_height, make_block_key, make_height_key
from ledger.store.leveldb import LevelDBStore
from node.config import load_config
from tests.node.netutil import find_free_base


def test_invalid_old_block_format_refused_without_traceback(tmp_path: Path) -> None:
    home = tmp_path / "testnet"
    manifest = init_testnet(home, validators=1, observers=0, base_port=find_free_base(2))
    node_dir = get_node_dir(home, manifest.nodes[0])
    config = load_config(node_dir / "node.toml")
    config.data_path.mkdir(parents=True, exist_ok=True)
    store = LevelDBStore(config.data_path / "chain.db")
    try:
        load_genesis_into(store, load_genesis_file(config.genesis_path))
        block = build_block(
            chain_id=manifest.chain_id,
            height=1,
            time_ms=1,
            prev_hash=b"\0" * 32,
            state_hash=b"\0" * 32,
            proposer=manifest.nodes[0].bank,
            validator_set_hash=b"\0" * 32,
            last_commit_hash=NO_COMMIT_HASH,
            txs=[],
        )
        header = block.header.to_obj()
        header[0] = 1  # the block format before signatures entered the tx root
        with store.atomic_batch() as batch:
            batch.put(make_block_key(1), pack([header, []]))
            batch.put(make_height_key(), encode_height(1))
    finally:
        store.close()
    run = subprocess.run(
        [sys.executable, "-m", "cli.main", "node", "run", "--home", str(node_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("error: store_format: block 1 "), run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1
    assert "Traceback" not in config.log_path.read_text()
