"""A quick password hasher for the test process.

Production's PBKDF2 takes about half a second per password on this machine, and the suite
creates and signs in users by the thousand. This is the same algorithm with few iterations:
a hash names its iteration count, so the web processes the browser tests sign in to (which
keep the default hashers) still verify it.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000
