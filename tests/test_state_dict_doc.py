"""docs/state_dict.md lists exactly the model's parameter names and shapes."""

import re
from pathlib import Path

import pytest

from transformer.model import Transformer, TransformerConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "state_dict.md"
SIZES = {"V_src": 11, "V_tgt": 13, "d": 8, "d_ff": 16, "max_len": 20}


def documented(table_heading_row):
    """name -> shape from the first table (rows like | `name` | (d, d_ff) | ... |)."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split(table_heading_row, 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| \(([^)]*)\) \|", table, flags=re.M)
    return {name: tuple(SIZES[p.strip()] for p in shape.split(",") if p.strip()) for name, shape in rows}


def expand(names, n_layers=2):
    return {name.replace("{i}", str(i)): shape for name, shape in names.items() for i in range(n_layers)}


@pytest.mark.parametrize("options, extra", [
    ({}, {}),
    ({"tie_output": False}, {"output.weight": (8, 13), "output.bias": (13,)}),
    ({"norm_first": True}, {f"{s}.norm.{p}": (8,) for s in ("encoder", "decoder") for p in ("weight", "bias")}),
    ({"positional": "learned"}, {"src_embed.positions.weight": (20, 8), "tgt_embed.positions.weight": (20, 8)}),
])
def test_table_matches_the_model(options, extra):
    model = Transformer(TransformerConfig(11, 13, d_model=8, n_heads=2, n_encoder_layers=2, n_decoder_layers=2,
                                          d_ff=16, max_len=20, **options))
    actual = {name: array.shape for name, array in model.state_dict().items()}
    assert actual == {**expand(documented("| name | shape | what it is |")), **extra}
