"""The pipeline: inbox → refresh → snapshots → outbox, with the sweeper and the
scheduler that ring again for rows whose message was lost or whose time came.

Every step claims its row with a conditional update, then decides; the Celery
tasks (``worker.tasks``) only call these modules and enqueue what they return.
"""
