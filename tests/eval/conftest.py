"""One pycocoevalcap METEOR Java process for the whole eval test session.

Starting the METEOR jar (it loads its paraphrase table) takes 10-30 s on a busy
machine, so every test that needs caption metrics shares this scorer; CLI tests
route the CLI's scorer to it through ``cli_uses_shared_scorer``.
"""

import shutil

import pytest

from vega3d.eval import captions


@pytest.fixture(scope="session")
def caption_scorer():
    if shutil.which("java") is None:
        pytest.skip("METEOR needs Java: no 'java' on PATH (CI installs a JRE)")
    scorer = captions.CaptionScorer()
    yield scorer
    scorer.close()


class _Unclosable:
    def __init__(self, scorer):
        self._scorer = scorer

    def score(self, *args, **kwargs):
        return self._scorer.score(*args, **kwargs)

    def close(self):
        pass


@pytest.fixture
def cli_uses_shared_scorer(monkeypatch, caption_scorer):
    monkeypatch.setattr(captions, "CaptionScorer", lambda: _Unclosable(caption_scorer))
