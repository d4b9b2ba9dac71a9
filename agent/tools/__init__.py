"""The installer's tools around the agent: provisioning a box, scanning a bus, and the self-test."""
