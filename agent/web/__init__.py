"""The local web page for staff and installers: a separate, read-only process beside the agent.

It asks the agent's status socket as `station-agent status` does and renders what the snapshot holds, so the
agent itself opens no port and holds no more memory for it. Modules: `pin` (the PIN's hash), `guard` (login
throttling and sessions, pure), `words` (every staff-facing string), `page` (HTML from a snapshot, pure),
`server` (the HTTP shell with its limits), `selftest_run` (the self-test in a child process).
"""
