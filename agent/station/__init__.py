"""The station's logic: readings and a time in, record intents out. No I/O, no clock, no threads."""
