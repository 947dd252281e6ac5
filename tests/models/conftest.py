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


@pytest.fixture(scope="session")
def c8_network():
    """Build a small C_8 steerable CNN with random weights (seed 0) from a library's ``nn`` module
    and gspace (e2cnn and escnn share this API): one trivial input field, 4 then 6 regular fields.
    Returns ``(model, input field type, output field type)``."""
    def build(enn, r2):
        torch.manual_seed(0)
        t_in = enn.FieldType(r2, [r2.trivial_repr])
        t_hid = enn.FieldType(r2, 4 * [r2.regular_repr])
        t_out = enn.FieldType(r2, 6 * [r2.regular_repr])
        model = enn.SequentialModule(
            enn.R2Conv(t_in, t_hid, kernel_size=5, padding=2), enn.ReLU(t_hid),
            enn.R2Conv(t_hid, t_out, kernel_size=5, padding=2), enn.ReLU(t_out),
        ).eval()
        return model, t_in, t_out
    return build
