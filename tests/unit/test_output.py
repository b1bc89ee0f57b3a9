"""What the user sees: rich lines on a terminal, plain lines elsewhere (rich not even loaded)."""

from __future__ import annotations

import io
import subprocess
import sys

from deployer.output import Reporter


def test_rich_lines_keep_brackets_and_mask_secrets():
    out = io.StringIO()
    reporter = Reporter("rich", stream=out)
    reporter.redactor.add(["s3cret-value"])
    reporter.event("h1", {"step": "smoke", "status": "ok", "detail": "[x] s3cret-value", "duration": 0.25})
    text = out.getvalue()
    assert "✓" in text and "smoke" in text and "[x] ***" in text and "(0.25s)" in text
    assert "s3cret-value" not in text


def test_plain_output_never_loads_rich_nor_invoke():
    code = (
        "import sys, io; import deployer.cli, deployer.pipeline, deployer.audit; "
        "from deployer.output import Reporter; "
        "Reporter('plain', stream=io.StringIO()).event('h', {'step': 'lock', 'status': 'ok'}); "
        "print(sorted(m for m in ('rich', 'invoke') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
