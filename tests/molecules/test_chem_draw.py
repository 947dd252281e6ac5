import numpy as np
import pytest

pytest.importorskip("rdkit")

from invlatent.molecules import draw_molecules


def test_invalid_cells_are_outlined_and_labelled_valid_cells_untouched():
    size = 120
    img = draw_molecules(["CCO", None, ""], legends=["a", "b (invalid)", ""], mols_per_row=3, size=size)
    a = np.asarray(img.convert("L")).astype(int)
    assert a.shape == (size, 3 * size)
    cells = [a[:, k * size:(k + 1) * size] for k in range(3)]
    for cell in cells[1:]:
        # the outline: a grey frame 6 px inside the cell, on all four sides
        assert (cell[6, 10:-10] < 250).all() and (cell[10:-10, 6] < 250).all()
        # the label: dark pixels in the middle of the cell
        assert (cell[size // 2 - 8:size // 2 + 8, 20:-20] < 200).any()
    # the valid molecule's cell has no frame at that inset
    assert (cells[0][6, 10:-10] >= 250).all()
