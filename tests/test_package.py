"""What installing and importing vbs_async costs: the library alone stays lean."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("yaml", "click", "rich", "aiohttp.web")


def loaded_after(statement: str) -> list[str]:
    program = (
        f"import sys; {statement}; "
        f"print(' '.join(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_import_vbs_async_loads_no_yaml_click_rich_or_aiohttp_server():
    assert loaded_after("import vbs_async") == []


def test_the_command_line_module_loads_no_emulator_until_asked():
    loaded = loaded_after("import vbs_async.cli._commands")
    assert "click" in loaded
    assert not [name for name in loaded if name.startswith("aiohttp.web")]


def test_the_console_script_without_its_extra_says_what_to_install():
    program = "import sys; sys.modules['click'] = None; from vbs_async.cli import run; run()"
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "vbs-async: error: the command needs click, which comes with the cli extra: "
        "pip install 'vbs-async[cli]'"
    )
