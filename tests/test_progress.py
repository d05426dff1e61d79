"""Progress bars: tqdm on a terminal, plain lines (no carriage returns) in a log."""

from vega3d.progress import LineProgress, progress


def test_a_log_gets_plain_lines_at_each_tenth_and_at_the_end(capsys):
    bar = progress(total=25, desc="extract", unit="item")  # pytest's stderr is not a terminal
    assert isinstance(bar, LineProgress)
    with bar:
        for _ in range(25):
            bar.update(1)
            bar.set_postfix(loss="0.5")
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("extract: 2/25 item (8%,") and lines[-1].startswith("extract: 25/25 item (100%,")
    assert len(lines) == 13 and "loss=0.5" in lines[-1]  # 2, 4, ..., 24 (12 lines) and the final 25


def test_iteration_disabled_and_unknown_total(capsys):
    assert list(progress(range(5), desc="x")) == list(range(5))
    assert capsys.readouterr().err.splitlines()[-1].startswith("x: 5/5 it (100%")
    assert list(progress(iter(range(3)), desc="y", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    for _ in progress(iter(range(250)), desc="z"):
        pass
    assert [line.split(" (")[0] for line in capsys.readouterr().err.splitlines()] == [
        "z: 100 it",
        "z: 200 it",
        "z: 250 it",
    ]
