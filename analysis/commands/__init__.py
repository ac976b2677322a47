"""One module per ``ana`` subcommand: each defines ``register(subparsers)`` and only parses arguments."""
