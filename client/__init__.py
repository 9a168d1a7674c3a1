"""The command-line client (speak, listen, connections) for local and deployed stacks."""
