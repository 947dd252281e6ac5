import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: 9-node graphs gain nothing from more, and extra threads
    only add overhead on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
