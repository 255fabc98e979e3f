"""Tutorials quote library code; ``quotes`` checks at run time that the code still says so.

    from tutorials.source import quotes
    quotes(tinyae.ops.Tanh.backward, 'kernels.activation_backward(gy, self.y, "tanh")')

Runs of whitespace count as one space, so a quote may break lines differently.
"""
import inspect
import re


def _squeeze(text):
    return re.sub(r"\s+", " ", text).strip()


def quotes(obj, *snippets):
    """Assert that the source of ``obj`` (a function, class or module) contains every snippet.

    Returns the source, so a tutorial can print it.
    """
    source = inspect.getsource(obj)
    where = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', obj.__name__)}"
    for snippet in snippets:
        assert _squeeze(snippet) in _squeeze(source), (
            f"the tutorial quotes {snippet!r} from {where}, but its source no longer says so; "
            "update the tutorial or the code")
    return source
