"""The `diffmig` command line: one module per subcommand group, registered in ``registry``.

Each module defines ``COMMANDS``: a list of ``Subcommand`` (name, help, example, how to add
its arguments, and the function that runs it). The management command builds the parser
from them and maps errors to the exit codes of docs/cli.md.
"""
