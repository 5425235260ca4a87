import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Test helpers (small IDX datasets, fake runs) are plain modules beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

from idx_fixtures import write_dataset  # noqa: E402

# No test asserts on time, and hypothesis's per-example deadline would be such an assertion (a first
# call into PyTorch or a loaded CI machine can take longer than it): it is off everywhere.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A folder of four small IDX files (600 training and 200 test images of drawn bars, one angle per
    class), for the tests that train end to end."""
    folder = tmp_path_factory.mktemp("digits")
    write_dataset(folder, n_train=600, n_test=200)
    return folder
