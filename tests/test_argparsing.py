"""Every command's bad command line is one line on stderr, exit status 2, before any work."""

from __future__ import annotations

import pytest

from latbench.analysis.cli import main as analysis_main
from latbench.cli import main as latbench_main
from latbench.harness.cli import main as measure_main
from latbench.predictors.cli import main as predict_main


@pytest.mark.parametrize(
    "main, argv, message",
    [
        (latbench_main, ["fetch"], "the following arguments are required"),
        (latbench_main, ["info", "KEY", "--bogus"], "unrecognized arguments: --bogus"),
        (measure_main, ["--repeats", "x"], "unrecognized arguments"),
        (predict_main, ["evaluate-adapt", "--seed", "x"], "expected a whole number, got 'x'"),
        (analysis_main, ["nas", "--limit-ms", "-1"], "must be a positive number"),
        (analysis_main, ["nas", "--fewshot-accept", "0"], "strictly between 0 and 1"),
        (analysis_main, ["nas", "--fewshot-accept", "nan"], "strictly between 0 and 1"),
        (analysis_main, ["nas", "--fewshot-accept", "low"], "expected a number"),
        (
            analysis_main,
            ["nas", "--accuracy", "cifar100", "--seed", "\x1b[2Jx"],
            "expected a whole number",
        ),
    ],
)
def test_bad_command_line_is_one_line_exit_2(capsys, main, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "--help" in err
    assert "usage:" not in err and "\x1b" not in err


@pytest.mark.parametrize(
    "main, argv, want",
    [
        (analysis_main, ["correlation", "--bundled", "--out", "{file}"], "for the output"),
        (analysis_main, ["correlation", "--bundled", "--data-home", "{file}", "--out", "{dir}"],
         "for the data home"),
        (predict_main, ["evaluate", "-d", "xeon2c-onnxruntime-fp32", "--data-home", "{file}"],
         "for the data home"),
    ],
)  # fmt: skip
def test_a_file_where_a_folder_goes_is_one_line_and_untouched(tmp_path, capsys, main, argv, want):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    argv = [a.format(file=blocker, dir=tmp_path / "out") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a folder but a file, no place " + want in err
    assert blocker.read_text() == "keep me" and not (tmp_path / "out").exists()


def test_ctrl_c_is_one_line_and_status_130(capsys):
    from latbench.argparsing import interruptible

    @interruptible("latbench-x")
    def main(argv=None):
        """Doc kept."""
        raise KeyboardInterrupt

    assert main([]) == 130 and main.__doc__ == "Doc kept."
    assert capsys.readouterr().err == "latbench-x: interrupted\n"
    assert analysis_main.__wrapped__ and predict_main.__wrapped__  # both commands wear it


def test_sigterm_unwinds_a_console_main_and_nohup_is_kept(capsys):
    import os
    import signal

    from latbench.argparsing import interruptible

    seen = {}

    @interruptible("latbench-x")
    def main(argv=None):
        seen["hup"] = signal.getsignal(signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)  # raised here, as a Terminated
        raise AssertionError("not reached")

    before = signal.getsignal(signal.SIGTERM)
    old_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as `nohup` leaves it
    try:
        assert main() == 128 + signal.SIGTERM
        assert seen["hup"] is signal.SIG_IGN  # still ignored inside the command
        assert capsys.readouterr().err == "latbench-x: stopped by SIGTERM\n"
        assert signal.getsignal(signal.SIGTERM) is before  # put back afterwards
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        # called with argv (a library caller, a test): no handler is installed
        seen.clear()

        @interruptible("latbench-x")
        def quiet(argv=None):
            seen["term"] = signal.getsignal(signal.SIGTERM)
            return 0

        assert quiet([]) == 0 and seen["term"] is before
    finally:
        signal.signal(signal.SIGHUP, old_hup)
