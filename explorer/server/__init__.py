"""The class server: one process serving a room. ``class_server`` holds the scheduler (a few
heavy jobs at once, fairly queued) and the session registry; ``jobs``/``compute_jobs`` run
work in the background and ``snapshots`` are what a page reads of them; ``isolation`` runs
process-wide measurements in a worker process; ``roots``, ``photos`` and ``links`` keep what a
student types, uploads or shares within bounds."""
