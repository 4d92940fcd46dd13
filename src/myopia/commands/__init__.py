"""One module per `myopia` command; each defines ``add_cli(subparsers)``."""
