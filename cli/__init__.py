"""The `float` command: OpenFloat's command-line client, spelled like MMCloud's.

It talks to the OpCenter's HTTPS API and imports only the shared wire models (chalicelib.wire).
"""
