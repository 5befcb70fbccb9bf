"""Wire models shared by the API, the worker agent and the `float` CLI.

Modules in this package import only pydantic and the standard library, so the CLI and the agent
can use them without pulling in boto3, Chalice or anything else the control plane needs.
"""
