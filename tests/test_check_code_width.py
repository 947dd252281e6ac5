"""tools/check_code_width.py: a code-cell line over 88 characters fails; prose may be long."""

import importlib.util
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "check_code_width.py"
spec = importlib.util.spec_from_file_location("check_code_width", TOOL)
check_code_width = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = check_code_width
spec.loader.exec_module(check_code_width)

PAGE = """# A chapter

A prose line may be as long as it likes: """ + "x" * 120 + """

```{code-cell} ipython3
x = 1
LINE
```

```python
# a plain fenced block is not a code cell: """ + "y" * 100 + """
```
"""


def test_exactly_88_passes_and_89_fails(tmp_path):
    ok = tmp_path / "ok.md"
    ok.write_text(PAGE.replace("LINE", "a = " + "1" * 84))  # 88 characters
    assert check_code_width.long_lines(ok.read_text()) == []
    assert check_code_width.main([str(ok)]) == 0
    bad = tmp_path / "bad.md"
    bad.write_text(PAGE.replace("LINE", "a = " + "1" * 85))  # 89 characters
    (lineno, length, _), = check_code_width.long_lines(bad.read_text())
    assert (lineno, length) == (7, 89)
    assert check_code_width.main([str(bad)]) == 1
    assert check_code_width.main(["--max", "89", str(bad)]) == 0
