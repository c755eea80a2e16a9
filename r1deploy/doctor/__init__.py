"""`r1deploy doctor`: diagnose a live stack and say the fix (docs/doctor.md).

Each check reads what its gatherers give it (the stack directory, HTTP answers, file system
stats, log text, this machine's commands and files) through a ``DoctorContext``, so tests
feed it recorded inputs; the registry is ``r1deploy.doctor.checks.DOCTOR_CHECKS``.
"""
