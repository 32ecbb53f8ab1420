"""A CLI run in process installs the CLI's SIGTERM handler; the suite's autouse fixture
(conftest.restore_sigterm_handler) puts pytest's back after each test."""
import signal

from click.testing import CliRunner

from ugcodec.cli import main

SUITE_HANDLER = signal.getsignal(signal.SIGTERM)  # at collection, before any test runs


def test_a_cli_run_installs_its_sigterm_handler(tmp_path):
    CliRunner().invoke(main, ["info", str(tmp_path / "missing.ugc")])
    assert signal.getsignal(signal.SIGTERM) is not SUITE_HANDLER


def test_the_next_test_has_the_suites_handler_again():
    assert signal.getsignal(signal.SIGTERM) is SUITE_HANDLER
