"""`gridswarm pretrained list` (the policies shipped with GridSwarm, usable as `pretrained:NAME` wherever a
checkpoint is accepted) and `gridswarm pretrained pack CHECKPOINT --name NAME ...` (make one)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

from fsio import read_text_bounded

USER_ERRORS = ("marl.run_dir.CheckpointError",)
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_MANIFEST_BYTES = 1 << 20


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pretrained", help="list the policies shipped with GridSwarm (pretrained:NAME), or pack one"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="one line per shipped policy: name, checkpoint file, description"
    )
    listing.set_defaults(handler=list_policies)
    pack = actions.add_parser(
        "pack",
        help="write a checkpoint's policy as a shipped policy: NAME.ckpt (weights and config only, <= 5 MB) "
        "and its manifest NAME.yaml",
    )
    pack.add_argument("checkpoint", help="a checkpoint, run directory or pretrained:NAME")
    pack.add_argument("--name", required=True, help="the policy's name (pretrained:NAME)")
    pack.add_argument("--description", required=True, help="one line: what the policy does")
    pack.add_argument(
        "--manifest",
        type=Path,
        help="a YAML mapping with the manifest's recipe, command, data, seed and metrics",
    )
    pack.add_argument("--out", type=Path, help="folder (default: GridSwarm's own, marl/pretrained)")
    pack.set_defaults(handler=pack_policy)


def list_policies(args: argparse.Namespace) -> int:
    from marl.run_dir import PRETRAINED_DIR, pretrained_policies

    policies = pretrained_policies()
    if not policies:
        print(f"no pretrained policies are shipped (folder {PRETRAINED_DIR})")
    for policy in policies:
        print(f"{policy.name}  {policy.checkpoint}  {policy.description}")
    return 0


def pack_policy(args: argparse.Namespace) -> int:
    from marl.run_dir import PRETRAINED_DIR, PRETRAINED_PREFIX, CheckpointError, pack_pretrained

    manifest: dict[str, Any] = {}
    if not NAME.fullmatch(args.name):
        raise CheckpointError(f"--name {args.name[:40]!r}: expected 1-64 letters, digits, '-' and '_'")
    if not args.description.strip():
        raise CheckpointError("--description: expected one line of text, found none")
    if args.manifest is not None:
        try:
            manifest = yaml.safe_load(read_text_bounded(args.manifest, MAX_MANIFEST_BYTES))
        except yaml.YAMLError as error:
            raise CheckpointError(f"{args.manifest}: not YAML ({type(error).__name__})") from None
        if not isinstance(manifest, dict):
            raise CheckpointError(f"{args.manifest}: expected a YAML mapping")
    out = PRETRAINED_DIR if args.out is None else args.out
    policy = pack_pretrained(args.checkpoint, out, args.name, args.description, manifest)
    print(f"{PRETRAINED_PREFIX}{policy.name}: {policy.checkpoint} ({policy.manifest['size_bytes']:,} bytes)")
    return 0
