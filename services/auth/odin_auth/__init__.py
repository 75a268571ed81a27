"""The auth service: users, passwords, sessions, API tokens and the JWT signing keys."""
