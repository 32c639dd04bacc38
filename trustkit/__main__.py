from trustkit.cli import entry

entry()
