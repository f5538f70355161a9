"""Length grouping is chosen from the measured padding share of random batches."""

from __future__ import annotations

import pytest

from distill.train import GROUP_BY_LENGTH_ABOVE, random_padding_share


def test_uniform_lengths_need_no_grouping():
    ids = [[0] * 100] * 64
    assert random_padding_share(ids, 8) == 0.0


def test_long_tailed_lengths_are_grouped():
    ids = [[0] * (50 if i % 8 else 2000) for i in range(256)]  # one long example per 8
    share = random_padding_share(ids, 8, seed=0)
    assert share > GROUP_BY_LENGTH_ABOVE


def test_padding_share_is_exact_on_a_known_batch():
    # one batch of lengths 1 and 3: 4 real tokens of 6 slots
    assert random_padding_share([[0], [0, 0, 0]], 2) == pytest.approx(1 / 3)
