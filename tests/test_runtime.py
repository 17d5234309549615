"""The extension loads without LD_LIBRARY_PATH and drives oneDNN."""
import catdog
from catdog import _engine


def test_onednn_version_and_threads():
    assert _engine.onednn_version().startswith("3.")
    catdog.set_num_threads(1)
    assert catdog.get_num_threads() == 1
    catdog.set_num_threads(2)
    assert catdog.get_num_threads() == 2


def test_bad_thread_count_is_value_error():
    import pytest

    with pytest.raises(ValueError, match="threads"):
        catdog.set_num_threads(0)
