from hypothesis import settings

# The machine is shared with servers under test: wall-clock deadlines would be noise.
settings.register_profile("r1deploy", deadline=None)
settings.load_profile("r1deploy")
