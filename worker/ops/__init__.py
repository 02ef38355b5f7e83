"""The ops query layer: bounded reads and idempotent actions over the relay's
own rows, shared by the command line and the /ops dashboard."""
