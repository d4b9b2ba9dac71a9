"""The field bus: one poller thread per line turns device registers into typed readings for the station."""
