"""The posterior oracle: it conditions on the history, its noise is small, it is calibrated (that it
only watches, leaving the raw tables byte-identical, is in test_generator)."""
from __future__ import annotations

import json
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.core.config import HOLDOUT_CUTOFF
from ml.datagen import posterior, simulate, world
from ml.datagen.simulate import calibrate, simulate_chunk


def test_sample_is_everyone_at_test_scale_and_every_kth_at_full_scale():
    assert posterior.sample_every(20_000) == posterior.sample_every(199_999) == 1
    every = posterior.sample_every(1_108_828)
    assert len(range(0, 1_108_828, every)) >= posterior.POSTERIOR_SAMPLE


@pytest.fixture(scope="module")
def chunks():
    """One chunk of 3,000 customers, its posterior oracle computed twice from independent draws."""
    catalogue = world.Catalogue.load()
    params = replace(calibrate(5, catalogue), oracle_cutoffs=(HOLDOUT_CUTOFF,), posterior_cutoff=HOLDOUT_CUTOFF)
    first = simulate_chunk(params, catalogue, 0, 0, 3_000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulate, "POSTERIOR_STREAM", 77)
        second = simulate_chunk(params, catalogue, 0, 0, 3_000)
    return first, second


def test_the_history_moves_the_tastes_the_right_amount(chunks):
    """A posterior mean is calibrated: E[true factor | posterior mean] = posterior mean, so the slope
    of the truth on it is 1 (a prior gives no signal, an overconfident posterior a slope below 1).
    The estimated means carry Monte Carlo noise, which would flatten the slope: the independent second
    run is the instrument (slope = cov(truth, second) / cov(first, second))."""
    first, second = chunks
    pop = first.population
    assert len(first.posterior.rows) == 3_000 and np.median(first.posterior.ess) > 10
    truth = np.column_stack([pop.latent_category, pop.latent_wealth])
    for factor in range(truth.shape[1]):
        a, b = first.posterior.factors[:, factor], second.posterior.factors[:, factor]
        assert np.corrcoef(a, b)[0, 1] > 0.3, f"factor {factor}: the history says nothing"
        slope = np.cov(truth[:, factor], b)[0, 1] / np.cov(a, b)[0, 1]
        assert 0.6 < slope < 1.4, f"factor {factor}: slope {slope:.2f}"


def test_monte_carlo_noise_is_small_next_to_the_spread_between_customers(chunks):
    first, second = chunks
    a, b = first.posterior.p, second.posterior.p
    cells = ~np.isnan(a) & (a > 0)  # 0: unsuitable in every month of the window
    log_a, log_b = np.log(a[cells]), np.log(b[cells])
    assert np.std(log_a - log_b) / np.sqrt(2) < 0.2 * np.std(log_a)


def test_probabilities_are_nan_exactly_where_held_and_agree_with_the_prior_oracle_on_average(chunks):
    result = chunks[0]
    p, prior = result.posterior.p, result.oracle[HOLDOUT_CUTOFF]["p_observable"]
    assert (np.isnan(p) == np.isnan(prior)).all()
    assert np.nanmin(p) >= 0 and np.nanmax(p) < 0.5
    # the same world, so the same order of magnitude; the posterior is lower, since customers who
    # went 15 months without a product have less taste for it than the prior assumes
    assert 0.5 * np.nansum(prior) < np.nansum(p) < np.nansum(prior)


def test_calibrated_on_the_test_bank(raw_data_dir):
    """Expected adoptions (the sum of the probabilities) match the window's adoptions."""
    folder = raw_data_dir / "oracle" / "posterior" / f"cutoff={HOLDOUT_CUTOFF.isoformat()}"
    table = pd.read_parquet(folder)
    assert len(table) == 20_000
    columns = [c for c in table.columns if c.startswith("p_posterior__")]
    raw = raw_data_dir / "raw"
    adopted = duckdb.sql(f"""
        with events as (select * from read_parquet('{raw}/events/*.parquet')),
        held as (select customer_id, product_id from events
                 where event_type in ('product_open', 'product_close') and event_time < timestamp '2025-04-01'
                 group by all having sum(case when event_type = 'product_open' then 1 else -1 end) > 0)
        select distinct e.customer_id, e.product_id from events e
        where e.event_type = 'product_open' and e.product_id not like 'SAV%'
          and e.event_time >= '2025-04-01' and e.event_time < '2025-07-01'
          and not exists (select 1 from held h where h.customer_id = e.customer_id and h.product_id = e.product_id)
    """).df()
    adopted = adopted[adopted.customer_id.isin(table.customer_id)]
    expected = float(np.nansum(table[columns].to_numpy()))
    assert abs(len(adopted) - expected) < 4 * np.sqrt(expected) + 0.05 * expected
    summary = json.loads((raw_data_dir / "oracle" / "world.json").read_text())["posterior_oracle"]
    assert summary["customers"] == 20_000 and summary["every"] == 1 and summary["seconds"] > 0
