"""Table 3 and Section 5: the largest tensor each model must hold at each resolution, against the paper."""

from __future__ import annotations

import json

import pytest

import mobilenet
from mobilenet.complexity.memory import PAPER_MAX_KB, PAPER_TABLE3, materialised_tensors, memory_table
from tests.helpers.runs import cli


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v1"])
def test_the_maximum_is_the_papers(arch: str) -> None:
    rows = memory_table(mobilenet.create_model(arch))
    assert [row.size for row in rows] == list(PAPER_TABLE3[arch])
    largest = max(row.largest.kilobytes for row in rows)
    # V2 about 400K against V1's 1600K (Table 3): 16 channels against 64 at 112x112 in 16-bit floats.
    assert largest == pytest.approx(PAPER_MAX_KB[arch], rel=0.01)
    assert rows[0].largest.channels == rows[0].paper_channels


def test_v1_rows_are_the_papers_and_v2_rows_where_the_tensor_exists() -> None:
    v1 = memory_table(mobilenet.create_model("mobilenet_v1"))
    assert [row.largest.channels for row in v1] == [row.paper_channels for row in v1]
    v2 = {row.size: row for row in memory_table(mobilenet.create_model("mobilenet_v2"))}
    # The paper's 56, 28 and 14 rows list the next stage's channels (32, 64, 160); the network's largest
    # bottleneck at those sizes is 24, 32 and 96 (Table 2), so ours are smaller there and equal elsewhere.
    assert {size: row.largest.channels for size, row in v2.items()} == {
        112: 16, 56: 24, 28: 32, 14: 96, 7: 320, 1: 1280
    }  # fmt: skip
    for size in (56, 28, 14):
        assert v2[size].largest.channels < v2[size].paper_channels


def test_streaming_is_what_makes_v2_small() -> None:
    v2, v1 = mobilenet.create_model("mobilenet_v2"), mobilenet.create_model("mobilenet_v1")
    unstreamed = max(t.kilobytes for t in materialised_tensors(v2, streamed=False))
    # Without Section 5's trick V2's 96-channel expansion at 112x112 is larger than anything V1 holds.
    assert unstreamed == pytest.approx(96 * 112 * 112 * 2 / 1000)
    assert unstreamed > max(t.kilobytes for t in materialised_tensors(v1))
    # Any width and resolution: at 0.5 and 160x160 the first bottleneck is 8 channels of 80x80.
    small = memory_table(mobilenet.create_model("mobilenet_v2_050"), resolution=160)
    assert (small[0].size, small[0].largest.channels, small[0].paper_channels) == (80, 8, None)


def test_cli_prints_table3_beside_the_paper() -> None:
    done = cli("profile", "mobilenet_v1_100", "--memory")
    assert done.returncode == 0, done.stderr
    assert "1605.6K" in done.stdout and "1600K" in done.stdout
    done = cli("profile", "--memory", "--json")
    assert done.returncode == 0, done.stderr
    streamed = json.loads(done.stdout)["streamed"]
    assert max(row["largest"]["channels"] * row["largest"]["size"] ** 2 * 2 for row in streamed) == 16 * 112 * 112 * 2
