"""The ledger: every record gets its `seq`, its `prev` link and its signature here, and is kept in the outbox.

The modules split the job by what can fail: `keys` (files on disk), `chain` (pure: sealing a record),
`outbox` (SQLite, durability), `recorder` (the one thread that writes, batches and survives a full disk).
"""
