"""Run the host engine CLI with the test service manager (for subprocess tests)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deployer.host.cli import main  # noqa: E402
from tests.host.supervisor import ProcessService  # noqa: E402

main(sys.argv[1:], service_factory=lambda c: ProcessService(Path(c.base_path), c.module))
