"""The lab's own tools around the agent: the end-to-end demo (`station-agent demo`) and the contract's schema
generator (`make schemas`). Neither belongs on a gateway; both know the agent only as a library and a command."""
