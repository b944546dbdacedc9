"""`mdxnet separate` subcommands (placeholder until its issue lands)."""


def register(subparsers) -> None:
    pass
