"""`gridswarm pretrained list` (the policies shipped with GridSwarm, usable as `pretrained:NAME` wherever a
checkpoint is accepted) and `gridswarm pretrained pack CHECKPOINT --name NAME ...` (make one)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from marl.run_dir import (
    PRETRAINED_DIR,
    PRETRAINED_PREFIX,
    CheckpointError,
    pack_pretrained,
    pretrained_policies,
)

USER_ERRORS = (CheckpointError,)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pretrained", help=f"list the policies shipped with GridSwarm ({PRETRAINED_PREFIX}NAME), or pack one"
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
    pack.add_argument("checkpoint", help=f"a checkpoint, run directory or {PRETRAINED_PREFIX}NAME")
    pack.add_argument("--name", required=True, help="the policy's name (pretrained:NAME)")
    pack.add_argument("--description", required=True, help="one line: what the policy does")
    pack.add_argument(
        "--manifest",
        type=Path,
        help="a YAML mapping with the manifest's recipe, command, data, seed and metrics",
    )
    pack.add_argument("--out", type=Path, default=PRETRAINED_DIR, help="folder (default: GridSwarm's own)")
    pack.set_defaults(handler=pack_policy)


def list_policies(args: argparse.Namespace) -> int:
    policies = pretrained_policies()
    if not policies:
        print(f"no pretrained policies are shipped (folder {PRETRAINED_DIR})")
    for policy in policies:
        print(f"{policy.name}  {policy.checkpoint}  {policy.description}")
    return 0


def pack_policy(args: argparse.Namespace) -> int:
    manifest: dict[str, Any] = {}
    if args.manifest is not None:
        try:
            manifest = yaml.safe_load(args.manifest.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise CheckpointError(
                f"{args.manifest}: cannot read the manifest ({type(error).__name__})"
            ) from None
        if not isinstance(manifest, dict):
            raise CheckpointError(f"{args.manifest}: expected a YAML mapping")
    if not args.name.replace("-", "").replace("_", "").isalnum():
        raise CheckpointError(f"--name {args.name!r}: expected letters, digits, '-' and '_' only")
    policy = pack_pretrained(args.checkpoint, args.out, args.name, args.description, manifest)
    print(f"{PRETRAINED_PREFIX}{policy.name}: {policy.checkpoint} ({policy.manifest['size_bytes']:,} bytes)")
    return 0
