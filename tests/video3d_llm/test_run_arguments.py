"""The Video-3D LLM runner's arguments and the LLaVA-Video config.json fields are declared: one line each."""

import pytest

from vega3d.config import parse
from vega3d.errors import Vega3DError
from vega3d.mllm.video3d_llm.evaluate import RunArguments
from vega3d.mllm.video3d_llm.loading import _HFConfig, _LlavaConfig


@pytest.mark.parametrize(
    "given, message",
    [
        ({"benchmark": "nr3d"}, r"^benchmark: got 'nr3d'; expected one of the Video-3D LLM family's benchmarks \("),
        ({"limit": 0}, r"^limit: got 0; expected None or a positive integer$"),
        ({"batch_size": True}, r"^batch_size: got True; expected a positive integer$"),
        ({"max_new_tokens": 2.0}, r"^max_new_tokens: got 2\.0; expected a positive integer$"),
        ({"num_frames": -1}, r"^num_frames: got -1; expected None or a positive integer$"),
    ],
)
def test_bad_run_argument_is_one_line(given, message):
    with pytest.raises(Vega3DError, match=message):
        RunArguments(**{"benchmark": "scanqa", **given})


def test_llava_config_fields_declared():
    ok = {"model_type": "llava_qwen", "mm_vision_tower": "t", "mm_projector_type": "mlp2x_gelu",
          "mm_vision_select_layer": -2}  # fmt: skip
    parse(_LlavaConfig, {**ok, "mm_spatial_pool_mode": None, "other": 1}, "c.json")
    with pytest.raises(Vega3DError, match=r"^c\.json: mm_vision_tower: string should have at least 1 character"):
        parse(_LlavaConfig, {**ok, "mm_vision_tower": ""}, "c.json")
    with pytest.raises(Vega3DError, match=r"^c\.json: ground_head_type: input should be 'infonce', got 'mlp'$"):
        parse(_LlavaConfig, {**ok, "ground_head_type": "mlp"}, "c.json")
    with pytest.raises(Vega3DError, match=r"^c\.json: vision_feature_layer: input should be -1, got -2$"):
        parse(_HFConfig, {"model_type": "llava_onevision", "vision_feature_layer": -2}, "c.json")
