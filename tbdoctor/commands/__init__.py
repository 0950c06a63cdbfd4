"""One module per CLI command: ``run(args) -> exit code``. Argument wiring is in cli.py."""
