"""REST gateway for the mini-program and the admin console: auth, roles, errors, routing to gRPC."""
