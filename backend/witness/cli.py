"""``honest-metering witness serve|keygen``: run a witness, make its key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_INCOMPLETE = 2


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _keygen(args: argparse.Namespace) -> int:
    import os

    from backend.ledger import note as notes
    from backend.privatefiles import private_dir

    path = Path(args.key)
    if path.exists():
        _err(f"{path} exists: a witness keeps its key (remove it yourself to start anew)")
        return EXIT_INCOMPLETE
    signer = notes.Signer.generate(args.name, notes.SIG_COSIGNATURE_V1)
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.skey + "\n")
    print(signer.verifier.vkey)
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.ledger import note as notes
    from backend.ledger.trustroot import TrustRootError
    from backend.ledger.trustroot_load import load_trust_root
    from backend.witness.app import create_witness_app
    from backend.witness.core import Witness, WitnessState

    try:
        key = notes.parse_skey(Path(args.key).read_text("utf-8"))
    except (OSError, notes.NoteError) as exc:
        _err(f"cannot read the witness key {args.key}: {exc}")
        return EXIT_INCOMPLETE
    if key.sig_type != notes.SIG_COSIGNATURE_V1:
        _err(f"{args.key} is not a cosigner key (make one with `witness keygen`)")
        return EXIT_INCOMPLETE
    logs: dict[str, list[notes.Verifier]] = {}
    for source in args.trust_root:
        try:
            root = load_trust_root(source)
        except TrustRootError as exc:
            _err(f"cannot use the trust root {source}: {exc}")
            return EXIT_INCOMPLETE
        logs.setdefault(root.body.log.origin, []).append(root.body.log_verifier())
    state = WitnessState(Path(args.db))
    witness = Witness(key=key, logs=logs, state=state)
    print(
        f"witness {key.verifier.vkey} for {', '.join(logs)} on {args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        uvicorn.run(
            create_witness_app(witness), host=args.host, port=args.port, log_level="warning"
        )
    finally:
        state.close()
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "witness",
        help="run a C2SP tlog-witness for the log (another agency's cosigner)",
        description="keygen: make a cosigner key (mode 0600) and print its verifier key. "
        "serve: cosign checkpoints that extend the last one seen (docs/witness.md).",
    )
    wsub = p.add_subparsers(dest="witness_command", required=True)
    k = wsub.add_parser("keygen", help="make a witness key")
    k.add_argument("--name", required=True, help="the witness's key name, e.g. notary.example/w1")
    k.add_argument("--key", required=True, metavar="FILE")
    k.set_defaults(func=_keygen)
    s = wsub.add_parser("serve", help="serve add-checkpoint")
    s.add_argument("--key", required=True, metavar="FILE")
    s.add_argument(
        "--trust-root", required=True, action="append", metavar="FILE|URL",
        help="the log(s) to witness: origin and log key come from each trust root",
    )
    s.add_argument("--db", required=True, metavar="FILE", help="the witness's own SQLite file")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8100)
    s.set_defaults(func=_serve)
