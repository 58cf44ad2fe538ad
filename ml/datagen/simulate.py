"""Simulate one chunk of customers month by month: holdings, adoptions and every event.

Months are indexed from 0 = January 2024 to 17 = June 2025. At the start of each month the
bank's observable state (holdings, channel bindings, recent triggers, activity) and the latent
factors set each product's adoption hazard; adoptions, closures and the month's other events
follow. The oracle accumulates, for the cut-offs it reports, the exact probability of adoption
in the three-month label window along the realised path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ml.core.config import CUTOFFS, HISTORY_START, LABEL_WINDOW_MONTHS
from ml.datagen import world
from ml.datagen.population import Population, draw_population
from ml.datagen.posterior import POSTERIOR_STREAM, PosteriorOracle, PosteriorRecorder, PosteriorResult
from ml.datagen.scoring import MonthState, Scorer, sigmoid, solve_base

N_MONTHS = 18
EVENT_TYPES = ("product_open", "product_trade", "product_redeem", "product_close", "channel_bind",
               "salary_credit", "deposit_maturity", "card_replacement")
CHANNELS = ("branch", "mobile_banking", "wechat", "online_banking", "atm", "system")
BOUND_CHANNELS = (1, 2, 3)  # indices into CHANNELS of the bindable channels
HOLD_ORDER_CATEGORIES = ("savings", "credit", "protection", "wealth")  # sources of relations first
GAUSS_HERMITE_NODES = 10
PRODUCT_INDEX = {p: i for i, p in enumerate(world.Catalogue.load().ids)}


def month_index(day) -> int:
    return (day.year - HISTORY_START.year) * 12 + day.month - HISTORY_START.month


@dataclass
class Parameters:
    """World parameters fixed before any chunk is simulated (calibrated once per seed)."""

    seed: int
    base_hold: np.ndarray
    base_adopt: np.ndarray
    oracle_cutoffs: tuple = ()
    posterior_cutoff: object = None  # a date: the posterior oracle's cut-off (None: not computed)
    posterior_every: int = 1  # every k-th customer is in the posterior oracle's sample


@dataclass
class EventBuffer:
    """Column buffers of events, appended month by month."""

    cols: dict = field(default_factory=lambda: {k: [] for k in
                                                ("cust", "time", "etype", "product", "amount", "channel")})

    def add(self, cust, time, etype, product, amount, channel):
        n = len(cust)
        if n == 0:
            return
        self.cols["cust"].append(np.asarray(cust, dtype=np.int32))
        self.cols["time"].append(np.asarray(time, dtype="datetime64[s]"))
        self.cols["etype"].append(np.full(n, etype, dtype=np.int8))
        self.cols["product"].append(np.broadcast_to(np.asarray(product, dtype=np.int16), (n,)).copy())
        self.cols["amount"].append(np.broadcast_to(np.asarray(amount, dtype=np.float64), (n,)).copy())
        self.cols["channel"].append(np.broadcast_to(np.asarray(channel, dtype=np.int8), (n,)).copy())

    def arrays(self) -> dict:
        return {k: np.concatenate(v) if v else np.array([]) for k, v in self.cols.items()}


def _month_start(m: int) -> np.datetime64:
    return np.datetime64("2024-01", "M") + m


def _random_times(rng, m: int, n: int, day_from: int = 0, day_to: int | None = None) -> np.ndarray:
    start = _month_start(m).astype("datetime64[s]")
    days = int((_month_start(m + 1) - _month_start(m)).astype("timedelta64[D]").astype(int)) if day_to is None else day_to
    seconds = rng.integers(day_from * 86400, days * 86400, n)
    return start + seconds.astype("timedelta64[s]")


def _product_amount(rng, catalogue: world.Catalogue, pop: Population, cust: np.ndarray, j: int) -> np.ndarray:
    """Opening amount: investment, loan principal, premium or deposit, by category."""
    cat = catalogue.categories[j]
    min_inv = float(catalogue.column("min_investment_cny")[j])
    assets = pop.assets[cust]
    if cat == "credit":
        scale = {"CRD_MORTGAGE": 600_000, "CRD_BUSINESS": 300_000, "CRD_CONSUMER": 50_000, "CRD_CARD": 20_000}
        return np.round(scale.get(catalogue.ids[j], 50_000) * np.exp(rng.normal(0, 0.4, len(cust))), -2)
    if cat == "protection":
        return np.round(np.maximum(min_inv, 2000 * np.exp(rng.normal(0, 0.6, len(cust)))), 2)
    return np.round(np.maximum(min_inv, assets * rng.uniform(0.05, 0.4, len(cust))), 2)


def _hold_order(catalogue: world.Catalogue) -> list[int]:
    cats = catalogue.categories
    return [j for c in HOLD_ORDER_CATEGORIES for j in range(len(cats)) if cats[j] == c]


def initial_holdings(rng, pop: Population, scorer: Scorer, base_hold: np.ndarray | None,
                     targets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Holdings on 2024-01-01, drawn product by product so complements shape co-holding.

    With ``targets`` (calibration), each product's intercept is solved so that its holding rate
    matches the target given the products drawn before it; returns (holdings, intercepts).
    """
    n, n_products = len(pop), len(scorer.catalogue.ids)
    state = _initial_state(rng, pop, n_products)
    suitable = scorer.suitable(pop, 0)
    latent = pop.latent_logit(scorer.catalogue)
    profile = scorer.profile(pop, 0, state.payroll)
    channel_activity = scorer.context(MonthState(np.zeros((n, n_products), bool), state.bound,
                                                 state.recent_triggers, state.activity_90d, state.payroll))
    held = np.zeros((n, n_products), dtype=bool)
    base = np.zeros(n_products) if base_hold is None else base_hold.copy()
    for j in _hold_order(scorer.catalogue):
        logit = profile[:, j] + channel_activity[:, j] + latent[:, j] + held.astype(float) @ scorer.relations[:, j]
        if targets is not None:
            base[j] = solve_base(logit[:, None], suitable[:, [j]], np.array([targets[j]]))[0]
        held[:, j] = suitable[:, j] & (rng.random(n) < sigmoid(base[j] + logit))
    return held, base


def _initial_state(rng, pop: Population, n_products: int) -> MonthState:
    young = np.clip((70 - pop.age0) / 50, 0.05, 0.95)
    bound = np.column_stack([rng.random(len(pop)) < 0.75 * young,
                             rng.random(len(pop)) < 0.5 * young,
                             rng.random(len(pop)) < 0.25 * young])
    return MonthState(
        holdings=np.zeros((len(pop), n_products), dtype=bool),
        bound=bound,
        recent_triggers=np.zeros((len(pop), len(world.TRIGGERS)), dtype=bool),
        activity_90d=3 * pop.activity_rate,
        payroll=pop.payroll_start < 0,
    )


def calibrate(seed: int, catalogue: world.Catalogue, sample_size: int = 40_000) -> Parameters:
    """Solve each product's intercepts on a calibration sample so rates match world.FITS."""
    rng = np.random.default_rng([seed, 999_999])
    pop = draw_population(rng, seed, 10**9, sample_size, len(catalogue.ids))
    scorer = Scorer(catalogue)
    held, base_hold = initial_holdings(rng, pop, scorer, None, targets=catalogue.fit_array("hold_rate"))
    state = _initial_state(rng, pop, len(catalogue.ids))
    state.holdings = held
    logits = scorer.observable(pop, 0, state) + pop.latent_logit(catalogue)
    eligible = scorer.suitable(pop, 0) & ~held
    base_adopt = solve_base(logits, eligible, catalogue.fit_array("monthly_adoption"))
    return Parameters(seed=seed, base_hold=base_hold, base_adopt=base_adopt)


@dataclass
class ChunkResult:
    population: Population
    events: dict
    oracle: dict  # cutoff -> dict of arrays
    held_elsewhere: np.ndarray
    variance_share: dict
    posterior: PosteriorResult | None = None


def held_elsewhere_probability(pop: Population, catalogue: world.Catalogue) -> np.ndarray:
    """Chance a customer holds each product at another bank: observable (assets, urban) only."""
    rate = world.HELD_ELSEWHERE_RATE * np.exp(0.5 * pop.log_assets + 0.4 * (pop.urban - 0.5))
    return np.clip(rate[:, None] * catalogue.targets[None, :], 0.0, 0.25)


def simulate_chunk(params: Parameters, catalogue: world.Catalogue, chunk_index: int, start: int,
                   count: int) -> ChunkResult:
    rng = np.random.default_rng([params.seed, chunk_index])
    n_products = len(catalogue.ids)
    pop = draw_population(rng, params.seed, start, count, n_products)
    scorer = Scorer(catalogue)
    held, _ = initial_holdings(rng, pop, scorer, params.base_hold)
    state = _initial_state(rng, pop, n_products)
    state.holdings = held
    latent = pop.latent_logit(catalogue)
    elsewhere_p = held_elsewhere_probability(pop, catalogue)
    elsewhere = rng.random(elsewhere_p.shape) < elsewhere_p
    close_rate = catalogue.fit_array("monthly_close")
    relations = catalogue.relation_matrix()
    substitutes = [(a, b) for a, b in zip(*np.nonzero(relations < 0)) if a < b]
    events = EventBuffer()
    _opening_events(rng, pop, catalogue, held, state.bound, events)

    oracle = _OracleAccumulator(params.oracle_cutoffs, catalogue, pop)
    # the posterior oracle only watches: it draws from a stream of its own, after the chunk
    recorder = (PosteriorRecorder(params.posterior_cutoff, pop, start, params.posterior_every,
                                  n_products) if params.posterior_cutoff else None)
    last_trigger = np.full((count, len(world.TRIGGERS)), -99)
    activity = np.zeros((count, N_MONTHS), dtype=np.int32)
    for m in range(N_MONTHS):
        state.payroll = pop.payroll_start < m  # salary credited before this month (-1: before 2024)
        state.recent_triggers = (m - last_trigger >= 1) & (m - last_trigger <= world.TRIGGER_WINDOW_MONTHS)
        if m >= 3:
            state.activity_90d = activity[:, m - 3:m].sum(axis=1)
        if recorder:
            recorder.month_start(m, state, last_trigger, activity)
        observable = params.base_adopt + scorer.observable(pop, m, state)
        suitable = scorer.suitable(pop, m)
        hazard = sigmoid(observable + latent) * (suitable & ~elsewhere)
        oracle.observe(m, observable, latent, hazard, state.holdings, suitable, elsewhere_p, elsewhere)

        adopt = ~state.holdings & (rng.random(hazard.shape) < hazard)
        for src, dst in substitutes:  # a customer picks one of two substitutes, also within a month
            adopt[:, dst] &= ~adopt[:, src]
        if recorder:
            recorder.month_outcome(m, observable, suitable, state.holdings, adopt, substitutes)
        close = state.holdings & (rng.random(hazard.shape) < close_rate[None, :])
        _product_events(rng, m, pop, catalogue, state, adopt, close, events)
        state.holdings = (state.holdings & ~close) | adopt
        activity[:, m] = _monthly_events(rng, m, pop, state, last_trigger, events)

    share = oracle.variance_share
    posterior = None
    if recorder:
        model = PosteriorOracle(catalogue, params.base_hold, params.base_adopt, _hold_order(catalogue))
        posterior = model.run(recorder, pop, held, elsewhere_p,
                              np.random.default_rng([params.seed, chunk_index, POSTERIOR_STREAM]))
    return ChunkResult(pop, events.arrays(), oracle.results(), elsewhere, share, posterior)


def _opening_events(rng, pop, catalogue, held, bound, events: EventBuffer) -> None:
    """Open events (with their original dates) of positions and bindings held on 2024-01-01."""
    since = pop.customer_since.astype("datetime64[s]")
    floor = np.datetime64("2015-01-01", "s")
    end = np.datetime64("2024-01-01", "s")
    for j in range(len(catalogue.ids)):
        cust = np.flatnonzero(held[:, j])
        if catalogue.ids[j] == "SAV_DEMAND":
            times = since[cust] + rng.integers(0, 86400, len(cust)).astype("timedelta64[s]")
        else:
            lo = np.maximum(since[cust], floor)
            span = (end - lo).astype(np.int64)
            times = lo + (rng.random(len(cust)) * span).astype("timedelta64[s]")
        amount = _product_amount(rng, catalogue, pop, cust, j)
        events.add(cust, times, 0, j, amount, 0)
    for b, channel in enumerate(BOUND_CHANNELS):
        cust = np.flatnonzero(bound[:, b])
        lo = np.maximum(since[cust], np.datetime64("2016-01-01", "s"))
        times = lo + (rng.random(len(cust)) * (end - lo).astype(np.int64)).astype("timedelta64[s]")
        events.add(cust, times, 4, -1, np.nan, channel)


def _product_events(rng, m, pop, catalogue, state, adopt, close, events: EventBuffer) -> None:
    mobile = state.bound[:, 0]
    for j in range(len(catalogue.ids)):
        cust = np.flatnonzero(adopt[:, j])
        if len(cust):
            channel = np.where(mobile[cust] & (rng.random(len(cust)) < 0.6), 1, 0)
            events.add(cust, _random_times(rng, m, len(cust)), 0, j, _product_amount(rng, catalogue, pop, cust, j), channel)
        cust = np.flatnonzero(close[:, j])
        events.add(cust, _random_times(rng, m, len(cust)), 3, j, np.nan, 0)
        if catalogue.categories[j] == "wealth":
            holders = np.flatnonzero(state.holdings[:, j] & ~close[:, j])
            trade = holders[rng.random(len(holders)) < 0.25]
            events.add(trade, _random_times(rng, m, len(trade)), 1, j,
                       np.round(pop.assets[trade] * rng.uniform(0.01, 0.08, len(trade)), 2), 1)
            redeem = holders[rng.random(len(holders)) < 0.04]
            events.add(redeem, _random_times(rng, m, len(redeem)), 2, j,
                       np.round(pop.assets[redeem] * rng.uniform(0.01, 0.1, len(redeem)), 2), 1)


def _monthly_events(rng, m, pop, state, last_trigger, events: EventBuffer) -> np.ndarray:
    """Everyday transactions, salary, maturities, card replacements, bindings; returns activity."""
    n = len(pop)
    rate = pop.activity_rate * np.exp(pop.activity_slope * m) * (1 + 0.5 * state.bound[:, 0])
    counts = rng.poisson(rate)
    cust = np.repeat(np.arange(n), counts)
    bound_any = state.bound[cust]
    channel = np.where(bound_any[:, 0] & (rng.random(len(cust)) < 0.6), 1,
                       np.where(bound_any[:, 1] & (rng.random(len(cust)) < 0.5), 2,
                                rng.choice([0, 4], len(cust))))
    events.add(cust, _random_times(rng, m, len(cust)), 1, PRODUCT_INDEX["SAV_DEMAND"],
               np.round(np.exp(rng.normal(5.5, 1.1, len(cust))), 2), channel)

    paid = np.flatnonzero(pop.payroll_start <= m)
    events.add(paid, _random_times(rng, m, len(paid), 9, 15), 5, -1,
               np.round(pop.salary[paid] * rng.normal(1, 0.04, len(paid)), 2), 5)
    last_trigger[pop.payroll_start == m, 0] = m

    time_deposit, large_cd = PRODUCT_INDEX["SAV_TIME"], PRODUCT_INDEX["SAV_LCD"]
    deposit_holders = state.holdings[:, time_deposit] | state.holdings[:, large_cd]
    mature = np.flatnonzero(deposit_holders & (rng.random(n) < 0.035))
    product = np.where(state.holdings[mature, large_cd], large_cd, time_deposit).astype(np.int16)
    amount = np.round(pop.assets[mature] * rng.uniform(0.1, 0.5, len(mature)), 2)
    for prod in (time_deposit, large_cd):
        sel = product == prod
        events.add(mature[sel], _random_times(rng, m, int(sel.sum())), 6, prod, amount[sel], 5)
    last_trigger[mature, 1] = m

    replace_p = np.where(pop.card == 0, 0.02 if m < 12 else 0.008, 0.003)
    replaced = np.flatnonzero(rng.random(n) < replace_p)
    events.add(replaced, _random_times(rng, m, len(replaced)), 7, -1, np.nan, 0)
    last_trigger[replaced, 2] = m

    young = np.clip((70 - pop.age_at_month(m)) / 50, 0.05, 0.95)
    for b, (channel_code, p) in enumerate(zip(BOUND_CHANNELS, (0.015, 0.01, 0.004))):
        new = np.flatnonzero(~state.bound[:, b] & (rng.random(n) < p * young))
        events.add(new, _random_times(rng, m, len(new)), 4, -1, np.nan, channel_code)
        state.bound[new, b] = True
    return np.bincount(cust, minlength=n).astype(np.int32)


class _OracleAccumulator:
    """Exact label-window probabilities for the reported cut-offs, with and without latents."""

    def __init__(self, cutoffs, catalogue: world.Catalogue, pop: Population):
        self.cutoffs = {c: month_index(c) for c in cutoffs}
        self.targets = np.flatnonzero(catalogue.targets)
        nodes, weights = np.polynomial.hermite.hermgauss(GAUSS_HERMITE_NODES)
        self.z = np.sqrt(2.0) * nodes[:, None] * catalogue.latent_sd()[self.targets][None, :]  # (K, T)
        self.w = weights / np.sqrt(np.pi)
        n, t = len(pop), len(self.targets)
        self.acc = {c: {"true": np.zeros((n, t)), "obs": np.zeros((GAUSS_HERMITE_NODES, n, t), np.float32)}
                    for c in self.cutoffs}
        self.at_cutoff: dict = {}
        self.variance_share: dict = {}

    def observe(self, m, observable, latent, hazard, holdings, suitable, elsewhere_p, elsewhere) -> None:
        active = [c for c, mc in self.cutoffs.items() if mc <= m < mc + LABEL_WINDOW_MONTHS]
        if not active:
            return
        t = self.targets
        obs, lat = observable[:, t], latent[:, t]
        survive_true = np.log1p(-np.minimum(hazard[:, t], 1 - 1e-12))
        eligible = suitable[:, t]  # the rules alone; holding elsewhere enters as (1 - its probability)
        obs32 = obs.astype(np.float32)
        for k in range(GAUSS_HERMITE_NODES):
            survive = np.log1p(-sigmoid(obs32 + self.z[k][None, :].astype(np.float32)) * eligible)
            for c in active:
                self.acc[c]["obs"][k] += survive
        for c in active:
            self.acc[c]["true"] += survive_true
            if m == self.cutoffs[c]:
                self.at_cutoff[c] = {
                    "held": holdings[:, t].copy(),
                    "interest": sigmoid(obs + world.INTEREST_LATENT_WEIGHT * lat + world.INTEREST_SHIFT),
                    "elsewhere": elsewhere[:, t].copy(),
                    "elsewhere_p": elsewhere_p[:, t].copy(),
                }
                ok = eligible & ~holdings[:, t]
                true_logit = obs + lat
                self.variance_share[str(c)] = {
                    "latent_variance": float(lat[ok].var()),
                    "true_logit_variance": float(true_logit[ok].var()),
                    "n": int(ok.sum()),
                }

    def results(self) -> dict:
        out = {}
        for c, acc in self.acc.items():
            info = self.at_cutoff[c]
            p_true = 1.0 - np.exp(acc["true"])
            survival = np.tensordot(self.w, np.exp(acc["obs"].astype(np.float64)), axes=1)
            p_obs = (1.0 - info["elsewhere_p"]) * np.clip(1.0 - survival, 0.0, 1.0)  # quadrature rounding
            held = info["held"]
            out[c] = {
                "p_true": np.where(held, np.nan, p_true).astype(np.float32),
                "p_observable": np.where(held, np.nan, p_obs).astype(np.float32),
                "interest": np.where(held, np.nan, info["interest"]).astype(np.float32),
                "held_elsewhere": info["elsewhere"],
            }
        return out


def default_oracle_cutoffs(n: int = 3) -> tuple:
    return tuple(CUTOFFS[-n:])
