"""Subcommand modules of the `mdxnet` CLI; each exposes `register(subparsers)`."""
