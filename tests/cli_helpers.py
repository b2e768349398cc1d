"""Running ``python -m transformer`` in the test's own process, and checking its errors."""

import io
import sys

from transformer.cli import main


def run_main(argv, capsys, stdin=None, monkeypatch=None):
    """(exit status, stdout, stderr) of main(argv) in this process; ``stdin`` (text) needs ``monkeypatch``."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        status = main(argv)
    except SystemExit as e:  # argparse exits on usage errors and --help
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, *words, expected_status=None):
    """A failure (exit ``expected_status``, or any non-zero one) told in one line holding every word."""
    assert status != 0 if expected_status is None else status == expected_status, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
