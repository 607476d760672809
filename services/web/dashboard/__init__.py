"""The operator dashboard at /dashboard/: server-rendered Django pages for Django staff.

Every figure comes from the database, RabbitMQ (the cached queue figures that /metrics
serves too) or the workers' heartbeats, never from one web process's memory, so every
web replica shows the same. Every change goes through the library module that owns it
(conveyor.states, conveyor.queues, conveyor.workers, conveyor.scheduling.control).
"""
