"""A CLI run in process installs the CLI's SIGTERM handler; the suite's autouse fixture
(conftest.restore_sigterm_handler) puts back the one before the test after each test."""
import signal

from click.testing import CliRunner

from ugcodec.cli import main

BEFORE = []


def test_a_cli_run_installs_its_sigterm_handler(tmp_path):
    BEFORE.append(signal.getsignal(signal.SIGTERM))
    CliRunner().invoke(main, ["info", str(tmp_path / "missing.ugc")])
    assert signal.getsignal(signal.SIGTERM) is not BEFORE[0]


def test_the_next_test_has_the_handler_from_before_again():
    assert BEFORE and signal.getsignal(signal.SIGTERM) is BEFORE[0]
