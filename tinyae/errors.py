"""The one error for a mistake the user can fix, said in words the user can act on.

``tinyae.data``, the model files, the studies and the command line raise
``UsageError`` for what a person asked for and can change (a missing folder, a
label a model cannot take, an option that does not fit); the command line prints
it as one line and exits with status 2. Errors of the library itself keep their
own classes (``BackendError``, ``DataError``, ``CheckpointError``, ...).
"""


class UsageError(Exception):
    """A problem with what the user asked for, said in words the user can act on.

    Example::

        raise UsageError("--label 12: this cvae knows the classes 0..9")
    """
