"""TaskFlow's name for job boards: ``flowkit.jobs.backends`` is :mod:`flowkit.jobboard.backends`.

flowkit's own name is :mod:`flowkit.jobboard`; this package only lets TaskFlow's import paths resolve.
"""
