"""The examples in the public modules' docstrings run, and show what they say."""
import doctest
import importlib
import pkgutil

import pytest

import ugcodec

#: Every public module of the package (private ones and ``__main__`` have no examples).
MODULES = ["ugcodec"] + sorted(
    info.name for info in pkgutil.iter_modules(ugcodec.__path__, "ugcodec.") if not info.name.rsplit(".", 1)[1].startswith("_")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run python -m doctest -v)"


def test_the_api_is_shown_by_examples():
    finder = doctest.DocTestFinder()
    with_examples = {test.name for name in MODULES for test in finder.find(importlib.import_module(name)) if test.examples}
    for name in ("ugcodec", "ugcodec.codec.preference_to_beta", "ugcodec.entropy_coding", "ugcodec.latent_coders"):
        assert name in with_examples
