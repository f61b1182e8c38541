"""Text2SQL execution accuracy: knowbase vs the raw model vs the gold SQL, in one run.

Systems, on the same questions:

* ``gold``     -- the gold SQL through the knowbase harness (validator + read-only
  executor); must score 1.000, which proves the harness and the comparison.
* ``knowbase`` -- :class:`knowbase.sql.Text2SQL` (compact schema with sample values,
  rules, validation, error feedback and retries; no answer sentence).
* ``knowbase-voteN`` -- the same with ``candidates=N``: the greedy SQL and N-1 sampled
  ones (temperature 0.7) vote with their execution results (self-consistency).
* ``raw``      -- the same model given only the database's CREATE TABLE statements and
  the question (template ``sql_raw``); the first SQL statement of its reply runs.

Data:

* Spider dev (``../shared/data/spider-dev``): 1,034 questions, of which 972 are
  executable (``wta_1`` ships without its ``.sqlite``, so its 62 questions are left out).
  ``--limit N`` takes a fixed, seeded sample stratified by (database, Spider hardness),
  with proportional quotas by the largest-remainder method; questions then run grouped
  by database so llama.cpp reuses the cached schema prefix.
* Chinook (``../shared/data/chinook``): the 20 questions with checked SQL in
  ``benches/data/chinook_questions.json`` (12 English, 8 Chinese).

Execution accuracy compares result multisets, order-insensitive unless the gold SQL has
ORDER BY, allowing a permutation of the columns (as the Spider test-suite evaluation,
Zhong et al. 2020, ``exec_eval.result_eq``). Hardness follows the official Spider
``evaluation.py`` rules (``eval_hardness``) on the parsed ``sql`` field of ``dev.json``.

Usage::

    .venv/bin/python benches/text2sql.py --limit 20            # 20 Spider + 20 Chinook
    .venv/bin/python benches/text2sql.py --limit 972 --no-chinook   # the full run (~3 h)
    # two processes side by side (one prefix cache each), then one table:
    .venv/bin/python benches/text2sql.py --limit 100 --systems gold,raw --no-chinook --out raw.json &
    .venv/bin/python benches/text2sql.py --limit 100 --systems knowbase --out kb.json
    .venv/bin/python benches/text2sql.py --report raw.json kb.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
CHINOOK_QUESTIONS = Path(__file__).resolve().parent / "data" / "chinook_questions.json"

# --- Spider hardness (official evaluation.py, Yu et al. 2018) -----------------------------
WHERE_LIKE = 9  # WHERE_OPS.index('like')


def _has_agg(unit: Any) -> bool:
    return unit[0] != 0  # AGG_OPS.index('none') == 0; the official code applies this to any unit


def _count_agg(units: list[Any]) -> int:
    return len([u for u in units if _has_agg(u)])


def _nested(sql: dict[str, Any]) -> list[Any]:
    out = []
    for cond in sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]:
        if isinstance(cond[3], dict):
            out.append(cond[3])
        if isinstance(cond[4], dict):
            out.append(cond[4])
    for key in ("intersect", "except", "union"):
        if sql[key] is not None:
            out.append(sql[key])
    return out


def _component1(sql: dict[str, Any]) -> int:
    count = sum(1 for k in ("where", "groupBy", "orderBy") if len(sql[k]) > 0) + (sql["limit"] is not None)
    if len(sql["from"]["table_units"]) > 0:
        count += len(sql["from"]["table_units"]) - 1
    ao = sql["from"]["conds"][1::2] + sql["where"][1::2] + sql["having"][1::2]
    count += len([t for t in ao if t == "or"])
    conds = sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]
    count += len([c for c in conds if c[1] == WHERE_LIKE])
    return count


def _others(sql: dict[str, Any]) -> int:
    agg = _count_agg(sql["select"][1]) + _count_agg(sql["where"][::2]) + _count_agg(sql["groupBy"])
    if len(sql["orderBy"]) > 0:
        agg += _count_agg([u[1] for u in sql["orderBy"][1] if u[1]] + [u[2] for u in sql["orderBy"][1] if u[2]])
    agg += _count_agg(sql["having"])
    return (agg > 1) + (len(sql["select"][1]) > 1) + (len(sql["where"]) > 1) + (len(sql["groupBy"]) > 1)


def hardness(sql: dict[str, Any]) -> str:
    """Spider's difficulty level of a parsed query: easy, medium, hard or extra."""
    c1, c2, co = _component1(sql), len(_nested(sql)), _others(sql)
    if c1 <= 1 and co == 0 and c2 == 0:
        return "easy"
    if (co <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and co < 2 and c2 == 0):
        return "medium"
    if (co > 2 and c1 <= 2 and c2 == 0) or (2 < c1 <= 3 and co <= 2 and c2 == 0) or (c1 <= 1 and co == 0 and c2 <= 1):
        return "hard"
    return "extra"


# --- result comparison (test-suite evaluation, Zhong et al. 2020) --------------------------
def result_eq(pred: list[tuple[Any, ...]], gold: list[tuple[Any, ...]], *, order_matters: bool) -> bool:
    """Same rows (as multisets, or as lists when ``order_matters``), up to a column permutation."""
    if len(pred) != len(gold):
        return False
    if not gold:
        return True
    width = len(gold[0])
    if any(len(r) != width for r in pred):
        return False
    gold_rows = [tuple(r) for r in gold]
    perms = itertools.permutations(range(width)) if width <= 6 else [tuple(range(width))]
    for perm in perms:
        moved = [tuple(r[i] for i in perm) for r in pred]
        if (moved == gold_rows) if order_matters else (Counter(moved) == Counter(gold_rows)):
            return True
    return False


# --- sampling ------------------------------------------------------------------------
def stratified_sample(items: list[dict[str, Any]], n: int, *, seed: int) -> list[dict[str, Any]]:
    """``n`` items, proportional to (db_id, hardness) strata (largest remainder), seeded."""
    if n >= len(items):
        return list(items)
    rng = random.Random(seed)
    strata: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        strata[(it["db_id"], it["hardness"])].append(it)
    keys = sorted(strata)
    for k in keys:
        rng.shuffle(strata[k])
    exact = {k: n * len(strata[k]) / len(items) for k in keys}
    quota = {k: math.floor(v) for k, v in exact.items()}
    rest = n - sum(quota.values())
    tiebreak = {k: rng.random() for k in keys}
    for k in sorted(keys, key=lambda k: (-(exact[k] - quota[k]), tiebreak[k]))[:rest]:
        quota[k] += 1
    return [it for k in keys for it in strata[k][:quota[k]]]


def spider_items() -> list[dict[str, Any]]:
    root = DATA / "spider-dev"
    out = []
    for i, ex in enumerate(json.loads((root / "dev.json").read_text())):
        path = root / "database" / ex["db_id"] / f"{ex['db_id']}.sqlite"
        if not path.is_file():
            continue  # wta_1: 62 questions without a database file
        out.append({"id": f"spider{i:04d}", "db_id": ex["db_id"], "db": str(path), "question": ex["question"],
                    "gold": ex["query"], "hardness": hardness(ex["sql"]), "lang": "en"})
    return out


def chinook_items() -> list[dict[str, Any]]:
    db = DATA / "chinook" / "Chinook_Sqlite.sqlite"
    return [{"id": q["id"], "db_id": "chinook", "db": str(db), "question": q["question"], "gold": q["sql"],
             "hardness": q["lang"], "lang": q["lang"]} for q in json.loads(CHINOOK_QUESTIONS.read_text())]


# --- systems --------------------------------------------------------------------------------
def ddl(db_path: str) -> str:
    """The CREATE TABLE statements stored in the database, as written by its author."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT sql FROM sqlite_master WHERE type='table' AND sql IS NOT NULL "
                            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid").fetchall()
    finally:
        conn.close()
    return ";\n".join(r[0].strip() for r in rows) + ";"


def vote_count(system: str) -> int:
    """Candidates of a knowbase system name: ``knowbase`` 1, ``knowbase-vote5`` 5.

    >>> vote_count("knowbase-vote5")
    5
    """
    match = re.fullmatch(r"knowbase(?:-vote(\d+))?", system)
    if not match:
        raise ValueError(f"unknown system {system!r}")
    return int(match.group(1) or 1)


def run(args: argparse.Namespace) -> int:
    from knowbase.models.registry import get_chat_model
    from knowbase.prompts import load_template
    from knowbase.sql.pipeline import Text2SQL

    items: list[dict[str, Any]] = []
    spider_all = spider_items()
    if args.limit != 0:
        chosen = stratified_sample(spider_all, args.limit if args.limit > 0 else len(spider_all), seed=args.seed)
        items += sorted(chosen, key=lambda it: (it["db_id"], it["id"]))
    if not args.no_chinook:
        items += chinook_items()
    systems = [s for s in args.systems.split(",") if s]
    model = get_chat_model(args.model, tracing=False) if any(s != "gold" for s in systems) else None
    raw_template = load_template("sql_raw")
    print(f"# {len(items)} questions ({sum(1 for i in items if i['db_id'] != 'chinook')} Spider sample of "
          f"{len(spider_all)} executable, seed {args.seed}; {sum(1 for i in items if i['db_id'] == 'chinook')} "
          f"Chinook); systems: {', '.join(systems)}; model: {model.spec if model else '-'}", flush=True)

    pipelines: dict[str, Text2SQL] = {}
    records: list[dict[str, Any]] = []
    by_db: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        by_db[it["db"]].append(it)
    import signal

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        _run_groups(args, by_db, systems, model, raw_template, pipelines, records)
    except KeyboardInterrupt:
        print(f"# interrupted: the tables cover the {len(records)} records done so far", flush=True)
    report(records)
    if args.out:
        Path(args.out).write_text(json.dumps(records, ensure_ascii=False, indent=1, default=str))
    return 0


def _run_groups(args: argparse.Namespace, by_db: dict[str, list[dict[str, Any]]], systems: list[str], model: Any,
                raw_template: Any, pipelines: dict[str, Any], records: list[dict[str, Any]]) -> None:
    from knowbase.errors import KnowbaseError
    from knowbase.sql.database import open_database
    from knowbase.sql.execute import execute
    from knowbase.sql.generate import extract_sql, first_statement
    from knowbase.sql.pipeline import Text2SQL

    for db_path, group in by_db.items():
        database = open_database(db_path)
        t2s = pipelines.setdefault(db_path, Text2SQL(db_path, model=model, answer=False, limit=None,
                                                     row_limit=args.row_limit, timeout=args.timeout,
                                                     sample_values=args.samples, max_attempts=args.attempts))
        gold_rows = {}
        for it in group:
            gold_rows[it["id"]] = execute(database, it["gold"], row_limit=args.row_limit, timeout=args.timeout).rows
        group_systems = systems if group[0]["db_id"] != "chinook" else \
            [s for s in systems if s in args.chinook_systems.split(",")]
        for system in group_systems:  # one system at a time per database keeps the prompt prefix cached
            for it in group:
                rec: dict[str, Any] = {"id": it["id"], "db_id": it["db_id"], "hardness": it["hardness"],
                                       "system": system, "question": it["question"]}
                order = "order by" in it["gold"].lower()
                t0 = time.perf_counter()
                timings = {"schema": 0.0, "generation": 0.0, "validation": 0.0, "execution": 0.0}
                rows = None
                status = "ok"
                sql = None
                attempts = 1
                try:
                    if system == "gold":
                        t1 = time.perf_counter()
                        checked = t2s.validate(it["gold"])
                        timings["validation"] = time.perf_counter() - t1
                        t1 = time.perf_counter()
                        rows = execute(database, checked.sql, row_limit=args.row_limit, timeout=args.timeout).rows
                        timings["execution"] = time.perf_counter() - t1
                        sql = checked.sql
                    elif system.startswith("knowbase"):
                        t2s.candidates = vote_count(system)
                        res = t2s.ask(it["question"])
                        timings.update({k: v for k, v in res.timings.items() if k in timings})
                        sql, attempts = res.sql, res.attempts
                        rec["votes"] = res.votes
                        if res.ok:
                            rows = res.rows
                        else:
                            status = "refused" if res.error and res.error.startswith("refused") else "invalid"
                            rec["error"] = res.error
                    else:  # raw
                        t1 = time.perf_counter()
                        prompt = raw_template.format(ddl=ddl(db_path), question=it["question"])
                        reply = model.chat(prompt, temperature=0.0, max_tokens=256).text  # type: ignore[union-attr]
                        timings["generation"] = time.perf_counter() - t1
                        sql = first_statement(extract_sql(reply))
                        t1 = time.perf_counter()
                        try:
                            if not sql:
                                raise KnowbaseError("no SQL in the reply")
                            rows = execute(database, sql, row_limit=args.row_limit, timeout=args.timeout).rows
                        except KnowbaseError as exc:
                            status, rec["error"] = "invalid", str(exc)
                        timings["execution"] = time.perf_counter() - t1
                except KnowbaseError as exc:
                    status, rec["error"] = "invalid", str(exc)
                rec.update(sql=sql, status=status, attempts=attempts, timings=timings,
                           seconds=time.perf_counter() - t0,
                           correct=rows is not None and result_eq(rows, gold_rows[it["id"]], order_matters=order))
                records.append(rec)
                print(f"{system:8} {it['id']:10} {it['hardness']:6} {'OK ' if rec['correct'] else 'BAD'} "
                      f"{status:7} {rec['seconds']:6.1f}s  {sql!s:.100}", flush=True)
        database.dispose()


def report(records: list[dict[str, Any]]) -> None:
    """Print the tables: accuracy per data set and system, by hardness, latency split."""
    def rows_for(dataset: str) -> list[dict[str, Any]]:
        return [r for r in records if (r["db_id"] == "chinook") == (dataset == "chinook")]

    for dataset in ("spider", "chinook"):
        recs = rows_for(dataset)
        if not recs:
            continue
        systems = list(dict.fromkeys(r["system"] for r in recs))
        levels = ["easy", "medium", "hard", "extra"] if dataset == "spider" else ["en", "zh"]
        print(f"\n## {dataset}: execution accuracy (n per system = {len(recs) // len(systems)})")
        head = f"| system | EX | {' | '.join(levels)} | invalid/refused | mean s/q | schema | generation | validation | execution | attempts |"
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for s in systems:
            rs = [r for r in recs if r["system"] == s]
            ex = sum(r["correct"] for r in rs) / len(rs)
            per = []
            for lv in levels:
                sub = [r for r in rs if r["hardness"] == lv]
                per.append(f"{sum(r['correct'] for r in sub) / len(sub):.3f} ({len(sub)})" if sub else "-")
            bad = sum(r["status"] != "ok" for r in rs) / len(rs)
            mean = {k: sum(r["timings"][k] for r in rs) / len(rs) for k in ("schema", "generation", "validation", "execution")}
            print(f"| {s} | {ex:.3f} | {' | '.join(per)} | {bad:.3f} | {sum(r['seconds'] for r in rs) / len(rs):.1f} | "
                  f"{mean['schema']:.3f} | {mean['generation']:.1f} | {mean['validation']:.3f} | {mean['execution']:.3f} | "
                  f"{sum(r['attempts'] for r in rs) / len(rs):.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=20, help="Spider questions (stratified sample); -1: all 972; 0: none")
    parser.add_argument("--seed", type=int, default=7, help="sampling seed")
    parser.add_argument("--systems", default="gold,knowbase,raw",
                        help="comma list of gold, knowbase, knowbase-voteN (N SQL candidates voted on by their "
                             "execution results: Text2SQL(candidates=N)), raw")
    parser.add_argument("--chinook-systems", default="gold,knowbase", help="systems run on Chinook")
    parser.add_argument("--no-chinook", action="store_true", help="skip the 20 Chinook questions")
    parser.add_argument("--model", default=None, help="chat model string (default: the configured model)")
    parser.add_argument("--samples", type=int, default=3, help="sample values per text column (knowbase)")
    parser.add_argument("--attempts", type=int, default=3, help="model attempts per question (knowbase)")
    parser.add_argument("--row-limit", type=int, default=100_000, help="rows fetched per query")
    parser.add_argument("--timeout", type=float, default=30.0, help="time limit per query, seconds")
    parser.add_argument("--out", default=None, help="write every record as JSON here")
    parser.add_argument("--report", nargs="+", default=None, metavar="JSON",
                        help="print the tables from the --out files of earlier runs (e.g. one process per "
                             "system on the same sample) instead of running")
    args = parser.parse_args(argv)
    if args.report:
        return report_files(args.report)
    return run(args)


def report_files(paths: list[str]) -> int:
    """Print the tables for the records in ``paths``, restricted to the questions every system answered.

    Lets two processes (say ``--systems gold,raw`` and ``--systems knowbase``, same
    ``--limit`` and ``--seed``) run side by side, one llama.cpp prefix cache each.
    """
    records: list[dict[str, Any]] = []
    for path in paths:
        records += json.loads(Path(path).read_text())
    kept: list[dict[str, Any]] = []
    for dataset in ("spider", "chinook"):
        recs = [r for r in records if (r["db_id"] == "chinook") == (dataset == "chinook")]
        by_system: dict[str, set[str]] = defaultdict(set)
        for r in recs:
            by_system[r["system"]].add(r["id"])
        if not by_system:
            continue
        common = set.intersection(*by_system.values())
        dropped = {s: len(ids - common) for s, ids in by_system.items() if ids - common}
        print(f"# {dataset}: {len(common)} questions answered by every system ({', '.join(sorted(by_system))})"
              + (f"; left out (not answered by all): {dropped}" if dropped else ""))
        kept += [r for r in recs if r["id"] in common]
    report(kept)
    return 0


if __name__ == "__main__":
    sys.exit(main())
