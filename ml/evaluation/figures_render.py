"""Markdown from docs/figures.json: README's "Measured figures" section and docs/figures.md.

A pure function of the document: the same JSON always renders the same text, and a section the
document does not have is left out (never filled in by hand).
"""
from __future__ import annotations

FORMATS = {"map_at_5": "{:.5f}", "recall_at_5": "{:.3f}", "top_decile_lift": "{:.2f}",
           "value_captured_at_5": "{:.3f}", "ratio": "{:.3f}"}
LIST_FIGURES = ("map_at_5", "recall_at_5", "top_decile_lift", "value_captured_at_5")
LIST_HEADER = "| MAP@5 | recall@5 | top-decile lift | value captured @5 |"
ROW_LABELS = {
    "served": "**served list** (stage one as the API answers: suitability, probability × value)",
    "propensity_only": "propensity only (the same code, value weighting off)",
    "rule_match_score": "banks' rule-based match score",
    "popularity": "popularity",
    "random": "random",
    "oracle_prior": "prior oracle (tastes integrated over their prior; window read off the realised path)",
    "oracle_posterior": "**posterior oracle** (best prediction from what is observable at the cut-off)",
    "oracle_posterior_by_value": "posterior oracle ranked by probability × value",
    "oracle_true": "full oracle (knows the latent tastes and the realised window)",
}
NIGHTLY = ("warehouse", "relations", "features", "train", "score", "publish")  # benchmarks.bench.NIGHTLY
NOTICE = ("<!-- Rendered by `make figures` from docs/figures.json: edit that file's producers, not this text. -->")


def with_ci(value, ci, fmt: str = "{:.3f}") -> str:
    if value is None:
        return "–"
    text = fmt.format(value)
    if ci and None not in ci:
        text += f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"
    return text


def seconds(value) -> str:
    return "–" if value is None else (f"{value:.0f} s" if value >= 10 else f"{value:.1f} s")


def source_line(source: dict) -> str:
    parts = []
    if source.get("scale") and source.get("customers"):
        parts.append(f"scale {source['scale']} ({source['customers']:,} customers)")
    if source.get("generator_seed") is not None:
        parts.append(f"generator seed {source['generator_seed']}")
    for key, label in (("eval_generator_seed", "unseen bank's seed"), ("cutoff", "held-out cut-off"),
                       ("model_version", "model")):
        if source.get(key):
            parts.append(f"{label} {source[key]}")
    parts.append(f"commit `{source.get('commit')}`, {str(source.get('date', ''))[:10]}")
    return f"*Source:* `{source.get('command')}` — " + "; ".join(parts) + "." + machine_text(source.get("machine"))


def machine_text(machine: dict | None) -> str:
    """The machine's state when the section was recorded (absent from older sections)."""
    if not machine:
        return ""
    text = f" Machine: {machine.get('cores')} cores, load average {machine.get('load_average_1m')} when recorded"
    return text + (f"; {machine['note'].rstrip('.')}." if machine.get("note") else ".")


def list_table(block: dict, names, title: str) -> list[str]:
    rows = block.get("rows", {})
    lines = [f"| {title} {LIST_HEADER}", "|---|---|---|---|---|"]
    for name in names:
        if name in rows:
            row = rows[name]
            cells = [with_ci(row[f], row["ci"].get(f), FORMATS[f]) for f in LIST_FIGURES]
            lines.append(f"| {ROW_LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    return lines


def ratio_text(block: dict, key: str) -> str:
    ratio = block.get("ratios", {}).get(key)
    return "–" if ratio is None else f"{with_ci(ratio['ratio'], ratio['ci'], FORMATS['ratio'])}×"


def lists_section(section: dict, full: bool) -> list[str]:
    out = ["### The lists managers see (held-out cut-off)", "", source_line(section["source"]), ""]
    every = section["all"]
    out += list_table(every, ("served", "propensity_only", "rule_match_score", "popularity", "random",
                              "oracle_prior", "oracle_true"), f"all {every['n_customers']:,} customers")
    out += ["", f"Recall@5 of the served list is {ratio_text(every, 'served_recall_vs_random')} random's and "
                f"{ratio_text(every, 'served_recall_vs_popularity')} popularity's (propensity only: "
                f"{ratio_text(every, 'propensity_only_recall_vs_random')} and "
                f"{ratio_text(every, 'propensity_only_recall_vs_popularity')}); value weighting changes MAP@5 by "
                f"{ratio_text(every, 'served_vs_propensity_only_map')} and value captured by "
                f"{ratio_text(every, 'served_value_vs_propensity_only')}."]
    sample = section.get("sample")
    if sample:
        oracle = section.get("posterior_oracle", {})
        out += ["", *list_table(sample, ("served", "propensity_only", "oracle_prior", "oracle_posterior",
                                         "oracle_posterior_by_value", "oracle_true"),
                                f"posterior oracle's sample: {sample['n_customers']:,} customers"),
                "", f"**The served list's MAP@5 is {ratio_text(sample, 'served_vs_posterior_oracle')} the posterior "
                    f"oracle's** (propensity only: {ratio_text(sample, 'propensity_only_vs_posterior_oracle')}; "
                    f"against the prior oracle: {ratio_text(sample, 'served_vs_prior_oracle')}). Its value captured "
                    f"is {ratio_text(sample, 'served_value_vs_posterior_oracle_by_value')} that of the posterior "
                    f"oracle ranked by probability × value."]
        if oracle:
            step = oracle.get("every")
            who = "every customer" if step == 1 else f"every {step}th customer"
            out += ["", f"Posterior oracle: {oracle.get('customers', 0):,} customers ({who}), {oracle.get('draws')} "
                        f"draws per pass, {oracle.get('nodes')} nodes; median effective draws "
                        f"{oracle.get('median_ess')} (10th percentile {oracle.get('p10_ess')}); "
                        f"{seconds(oracle.get('seconds'))} of CPU inside the generator."]
    timing = section.get("seconds", {})
    out += ["", f"Intervals: 95%, customer-level Poisson bootstrap ({section['source'].get('replicates')} "
                f"replicates, paired across rows; the top-decile cut held at the sample's threshold). `make evaluate` "
                f"took {seconds(timing.get('evaluation'))} (wall), of which the lists and intervals "
                f"{seconds(timing.get('lists'))}."]
    if full:
        out += ["", "Ratios (all customers):", "", *ratio_lines(every), "", "Ratios (sample):", "",
                *ratio_lines(sample or {})]
    return out


def ratio_lines(block: dict) -> list[str]:
    return [f"- `{key}`: {r['figure']} of {r['of']} / {r['over']} = {with_ci(r['ratio'], r['ci'], '{:.3f}')}"
            for key, r in block.get("ratios", {}).items()]


def cold_start_section(section: dict) -> list[str]:
    n = section["n"]
    lines = ["### Cold start", "", source_line(section["source"]), "",
             f"{section['product_id']} held out of training entirely and defined only by its attributes, ranked "
             f"among the {section['suitable_non_holders']:,} suitable non-holders of the unseen bank "
             f"({section['adopters']:,} adopted in the window).", "",
             f"| top {n} | precision@{n} (exact 95% interval) | hits | lift over random |", "|---|---|---|---|"]
    for key, label in (("precision_at_n", "cold-start model"), ("rule_precision_at_n", "rule-based match score"),
                       ("warm_precision_at_n", "model trained with the product's history")):
        row = section.get(key)
        if row:
            lines.append(f"| {label} | {with_ci(row['value'], row['ci'], '{:.4f}')} | {row['hits']} | "
                         f"{with_ci(row.get('lift'), row.get('lift_ci'), '{:.1f}')} |")
    lines.append(f"| random | {section['random_precision_at_n']:.5f} | – | 1 |")
    fc = section.get("forecast")
    if fc:
        lines += ["", f"Uptake forecast: {fc['expected']:,.0f} adopters in three months (range {fc['low']:,.0f}–"
                      f"{fc['high']:,.0f}); {fc['actual']:,} adopted."]
    return lines


def uci_section(section: dict) -> list[str]:
    cv, ts, ci = section["cv"], section["time_split"], section.get("intervals", {})
    names = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("capture_at_50", "share of subscribers in the top half"),
             ("lift_at_10", "lift, top decile"))
    src = section["source"]
    lines = ["### Real data: UCI Bank Marketing", "",
             f"*Source:* `{src['command']}` — {src['rows']:,} calls, {src['positives']:,} subscribers (positives "
             f"down-sampled to 2%, seed {src['generator_seed']}); commit `{src['commit']}`, {src['date'][:10]}.", "",
             f"Chosen strategy `{section['chosen']}` (by PR-AUC in a CV on the first 80% of rows only).", "",
             "| evaluation | " + " | ".join(label for _, label in names) + " |", "|---|---|---|---|---|"]
    lines.append(f"| {cv['folds']}-fold stratified CV: mean ± sd over folds | "
                 + " | ".join(f"{cv[k]:.3f} ± {cv['std'][k]:.3f}" for k, _ in names) + " |")
    pooled = ci.get("cv_pooled", {})
    if pooled:
        lines.append("| CV, pooled out-of-fold scores (bootstrap 95%) | "
                     + " | ".join(with_ci(cv["pooled"][k], pooled.get(k)) for k, _ in names) + " |")
    split = ci.get("time_split", {})
    lines.append(f"| time split: first 80% train, last 20% test ({ts['test_rows']:,} calls, "
                 f"{ts['test_positives']} subscribers; bootstrap 95%) | "
                 + " | ".join(with_ci(ts[k], split.get(k)) for k, _ in names) + " |")
    return lines


def pipeline_section(section: dict) -> list[str]:
    labels = {"datagen": "generate the bank (stands in for the extract; not nightly)",
              "warehouse": "`make warehouse`: feedback export + `dbt build`", "relations": "`make relations`",
              "features": "`make features`: vectors, `feast apply`, materialise the current snapshot",
              "train": "`make train`", "score": "`make score`: nightly lists, stage-one table, suitability audit",
              "publish": "`make publish`: assemble and switch the version serving reads",
              "strategies": "`make strategies` (not nightly)", "evaluate": "`make evaluate` (not nightly)"}
    lines = ["### The nightly job", "", source_line(section["source"]), "",
             "Wall time is the step's elapsed time on the machine as it was (other jobs included); CPU is the "
             "step's own processes'.", "", "| step (one run) | wall | CPU | peak memory |", "|---|---|---|---|"]
    for name, step in section.get("steps", {}).items():
        lines.append(f"| {labels.get(name, name)} | {seconds(step['seconds'])} | {seconds(step['cpu_seconds'])} | "
                     f"{step['peak_rss_mb'] / 1000:.1f} GB |")
    if section.get("nightly_seconds") is not None:
        nightly = [n for n in NIGHTLY if n in section["steps"]]
        cpu = sum(section["steps"][n]["cpu_seconds"] for n in nightly)
        lines += ["", f"`make nightly` ({', '.join(nightly)}): "
                      f"{section['nightly_seconds']:.0f} s wall, {cpu:.0f} s CPU, in one run; step times vary from "
                      f"run to run on a shared machine."]
    return lines


def online_reads_section(online: dict) -> list[str]:
    reads = ", ".join(f"{label} {with_ci(online[k]['value'], online[k]['ci'], '{:.3f} ms')}"
                      for k, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")))
    return ["### Online feature reads", "", source_line(online["source"]), "",
            f"One customer's `stage_one_v1` online read, in-process over {online['reads']:,} random customers: "
            f"{reads} (bootstrap 95% over the reads)."]


def serving_section(section: dict) -> list[str]:
    lines = ["### Serving", "", source_line(section["source"]), "",
             f"Each load test ran {section['repeats']} times; the cells give the median run and, in brackets, "
             "the lowest and highest.", "", "| load | achieved | p50 | p95 | p99 | errors |", "|---|---|---|---|---|---|"]
    for name, row in section.get("loads", {}).items():
        cells = [with_ci(row[k]["median"], row[k]["range"], "{:.2f} ms") for k in ("p50_ms", "p95_ms", "p99_ms")]
        lines.append(f"| {row['label']} | {row['rps']['median']:.0f}/s | " + " | ".join(cells)
                     + f" | {row['errors']['total']} |")
    best = section.get("max_rps_p95_under_100ms")
    if best:
        lines += ["", f"Highest stage-one rate with p95 under 100 ms for 60 s: {best['median']:.0f}/s (runs: "
                      + ", ".join(f"{v:.0f}" for v in best["runs"]) + ")."]
    durable = section.get("durability")
    if durable:
        lines += ["", f"Durability (`kill -9` during feedback writes): {durable['present_after_restart']} of "
                      f"{durable['acknowledged']} acknowledged answers present after restart, {durable['duplicates']} "
                      f"duplicates, summed over the runs."]
    return lines


PRODUCERS = {  # every section, and the command that records it (with FIGURES=docs/figures.json)
    "lists": "make evaluate", "cold_start": "make cold-start", "uci": "make uci", "pipeline": "make bench",
    "online_reads": "make bench", "serving": "make bench",
}


def missing(doc: dict) -> list[str]:
    """A line naming the sections the document does not have yet, and what records them."""
    absent = [f"{name} (`{command}`)" for name, command in PRODUCERS.items() if name not in doc]
    return [f"Not measured yet (absent from `docs/figures.json`): {', '.join(absent)}.", ""] if absent else []


def sections(doc: dict, full: bool) -> list[str]:
    out = missing(doc)
    if "lists" in doc:
        out += [*lists_section(doc["lists"], full), ""]
    if "cold_start" in doc:
        out += [*cold_start_section(doc["cold_start"]), ""]
    if "uci" in doc:
        out += [*uci_section(doc["uci"]), ""]
    if "pipeline" in doc:
        out += [*pipeline_section(doc["pipeline"]), ""]
    if "online_reads" in doc:
        out += [*online_reads_section(doc["online_reads"]), ""]
    if "serving" in doc:
        out += [*serving_section(doc["serving"]), ""]
    return out


def readme_section(doc: dict) -> str:
    intro = ("Every figure here is rendered from `docs/figures.json` (`make figures`), which the commands "
             "named under each table write; `docs/figures.md` has the full rendering with every ratio. Each "
             "table says its scale and seed.")
    return "\n".join([NOTICE, "", intro, "", *sections(doc, full=False)]).strip() + "\n"


def full_page(doc: dict) -> str:
    head = ["# Measured figures", "", NOTICE, "",
            "Rendered from `docs/figures.json` by `make figures`; README.md's \"Measured figures\" section is "
            "the short form. Regenerate a section with the command under it, then `make figures`.", ""]
    return "\n".join([*head, *sections(doc, full=True)]).strip() + "\n"
