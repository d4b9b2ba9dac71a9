"""Signed commands from the platform on the `cmd` topic: the envelope, its checks, and what each command does."""
