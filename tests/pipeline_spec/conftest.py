from pathlib import Path

import pytest

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "odin-samples"
SAMPLE_NAMES = ("sst2", "bert-ner", "imagenet-elastic")


@pytest.fixture(params=SAMPLE_NAMES)
def sample_dir(request: pytest.FixtureRequest) -> Path:
    return SAMPLES_DIR / str(request.param)
