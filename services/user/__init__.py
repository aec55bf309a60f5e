"""User service: accounts, SMS codes, passwords and access tokens."""
