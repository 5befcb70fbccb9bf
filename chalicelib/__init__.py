"""OpenFloat's control plane: everything the Lambda handlers in app.py call into."""
