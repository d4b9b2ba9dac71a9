"""What the tests share: waiting for an event, a clock a test moves by hand, and an outside MQTT subscriber."""
