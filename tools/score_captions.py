#!/usr/bin/env python3
"""Score caption predictions with the COCO caption metrics (CIDEr, BLEU, METEOR, ROUGE-L).

The paper's COCO number is CIDEr ×100 on the Karpathy test split (spec vlpet.md 6.3), computed by
`language_evaluation.CocoEvaluator`, i.e. the coco-caption scorers (pycocoevalcap) after Stanford
PTB tokenization. This tool runs the same scorers from pycocoevalcap on

  PREDICTIONS.jsonl  one object per line with "id" and "prediction" (Granule's predictions)
  REFERENCES.jsonl   one object per line with "id" and "captions" (convert_vl_adapter_dataset.py
                     --task caption writes it; lines repeating an id must repeat its captions)

and prints one line per metric, ×100 as in the paper's tables (`CIDEr 117.23`).

    python tools/score_captions.py predictions.jsonl data/caption-test.references.jsonl --json scores.json
    python tools/score_captions.py --self-test

Tokenization: PTBTokenizer (Stanford CoreNLP 3.4.1, shipped with pycocoevalcap) needs `java`; without
java, or with --tokenizer simple, captions are lower-cased, punctuation is split off and dropped
(an approximation of PTB: scores can differ slightly), and the output says so. METEOR needs java too
and is skipped with a note without it. Needs pycocoevalcap (pip install pycocoevalcap). CI does not
run this script.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile

# PTBTokenizer drops these tokens after tokenizing (pycocoevalcap/tokenizer/ptbtokenizer.py).
PTB_PUNCTUATIONS = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}
METRICS = ("cider", "bleu", "meteor", "rouge")


class InputError(Exception):
    pass


def read_jsonl(path: str, fields: dict[str, str]) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; `fields` maps required names to kinds."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 ({e})") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: line {number}: invalid JSON: {e}") from None
        if not isinstance(value, dict):
            raise InputError(f"{path}: line {number}: expected a JSON object")
        for name, kind in fields.items():
            if name not in value:
                raise InputError(f"{path}: line {number}: field '{name}': missing")
            v = value[name]
            ok = {"id": isinstance(v, (str, int)) and not isinstance(v, bool),
                  "string": isinstance(v, str),
                  "strings": isinstance(v, list) and len(v) > 0 and all(isinstance(c, str) for c in v)}[kind]
            if not ok:
                want = {"id": "a string or an integer", "string": "a string", "strings": "a non-empty array of strings"}[kind]
                raise InputError(f"{path}: line {number}: field '{name}': expected {want}")
        out.append((number, value))
    return out


def _key(identifier) -> str:
    return json.dumps(identifier)  # 7 and "7" stay distinct


def load_pairs(predictions_path: str, references_path: str, partial: bool = False):
    """Returns (ids, predictions, references): one entry per image, in the references' order."""
    references: dict[str, list[str]] = {}
    order: list = []
    for number, obj in read_jsonl(references_path, {"id": "id", "captions": "strings"}):
        key = _key(obj["id"])
        if key in references:
            if references[key] != obj["captions"]:
                raise InputError(f"{references_path}: line {number}: id {key} repeats with different captions")
            continue
        references[key] = obj["captions"]
        order.append(obj["id"])
    predictions: dict[str, str] = {}
    for number, obj in read_jsonl(predictions_path, {"id": "id", "prediction": "string"}):
        key = _key(obj["id"])
        if key in predictions:
            raise InputError(f"{predictions_path}: line {number}: a second prediction for id {key}")
        if key not in references:
            raise InputError(f"{predictions_path}: line {number}: id {key} is not in {references_path}")
        predictions[key] = obj["prediction"]
    if not predictions:
        raise InputError(f"{predictions_path}: no predictions")
    missing = [i for i in order if _key(i) not in predictions]
    if missing and not partial:
        raise InputError(f"{predictions_path}: {len(missing)} of {len(order)} reference images have no prediction "
                         f"(first: {_key(missing[0])}); --partial scores only the predicted ones")
    ids = [i for i in order if _key(i) in predictions]
    return ids, [predictions[_key(i)] for i in ids], [references[_key(i)] for i in ids]


def simple_tokenize(caption: str) -> str:
    """Lower-case, split off punctuation and drop it, split English clitics ('s, n't) as PTB does."""
    text = caption.lower().replace("\n", " ")
    text = re.sub(r"n't\b", " n't", text)
    text = re.sub(r"'(s|re|ve|ll|d|m)\b", r" '\1", text)
    tokens = re.findall(r"n't|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?:[-.][^\W_]+)*|\S", text)
    return " ".join(t.strip("-.") or t for t in tokens if t not in PTB_PUNCTUATIONS and re.search(r"[^\W_]", t))


class _quiet_stderr:
    """Points file descriptor 2 at /dev/null (child processes included) for the block."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


def tokenize(predictions: list[str], references: list[list[str]], tokenizer: str):
    """pycocoevalcap's input: {index: [tokenized caption]} for results and references."""
    res = {i: [p] for i, p in enumerate(predictions)}
    gts = {i: list(r) for i, r in enumerate(references)}
    if tokenizer == "ptb":
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        ptb = PTBTokenizer()
        with _quiet_stderr():  # java prints "PTBTokenizer tokenized N tokens at ..."
            gts = ptb.tokenize({i: [{"caption": c} for c in caps] for i, caps in gts.items()})
            res = ptb.tokenize({i: [{"caption": caps[0]}] for i, caps in res.items()})
        for i in range(len(predictions)):  # a last empty caption yields no output line
            res.setdefault(i, [""])
        return gts, res
    return ({i: [simple_tokenize(c) for c in caps] for i, caps in gts.items()},
            {i: [simple_tokenize(c) for c in caps] for i, caps in res.items()})


def score(predictions: list[str], references: list[list[str]], metrics=METRICS, tokenizer: str = "auto") -> dict:
    """{"CIDEr": x, "BLEU-1".."BLEU-4", "METEOR", "ROUGE-L" (×100), "images", "tokenizer", "notes"}."""
    java = shutil.which("java") is not None
    notes = []
    if tokenizer == "auto":
        tokenizer = "ptb" if java else "simple"
        if not java:
            notes.append("java not found: simple lower-case + punctuation-strip tokenization instead of PTBTokenizer")
    elif tokenizer == "ptb" and not java:
        raise InputError("--tokenizer ptb needs java (Stanford PTBTokenizer); try --tokenizer simple")
    gts, res = tokenize(predictions, references, tokenizer)
    out: dict = {"images": len(predictions), "tokenizer": tokenizer}
    if "cider" in metrics:
        from pycocoevalcap.cider.cider import Cider

        out["CIDEr"] = 100 * Cider().compute_score(gts, res)[0]
    if "bleu" in metrics:
        from pycocoevalcap.bleu.bleu import Bleu

        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        for n, value in enumerate(bleu, 1):
            out[f"BLEU-{n}"] = 100 * value
    if "meteor" in metrics:
        if not java:
            notes.append("METEOR skipped: it needs java")
        else:
            from pycocoevalcap.meteor.meteor import Meteor

            try:
                meteor = Meteor()
                try:
                    out["METEOR"] = 100 * meteor.compute_score(gts, res)[0]
                finally:
                    meteor.meteor_p.stdin.close()
                    meteor.meteor_p.kill()
                    meteor.meteor_p.wait()
            except Exception as e:  # noqa: BLE001 — a broken java/METEOR setup only loses METEOR
                notes.append(f"METEOR skipped: {type(e).__name__}: {e}")
    if "rouge" in metrics:
        from pycocoevalcap.rouge.rouge import Rouge

        out["ROUGE-L"] = 100 * Rouge().compute_score(gts, res)[0]
    out["notes"] = notes
    return out


def format_scores(result: dict) -> str:
    lines = [f"{name} {result[name]:.2f}" for name in ("CIDEr", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L")
             if name in result]
    lines.append(f"images {result['images']}, tokenizer {result['tokenizer']}")
    lines.extend(f"note: {n}" for n in result["notes"])
    return "\n".join(lines)


def write_json_atomic(path: str, value) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


# ----------------------------------------------------------------------------------------------
# Self-test


def _hand_cider(hyp: list[str], ref: list[str], n_images: int, df: dict) -> float:
    """CIDEr-D of one image with one reference, written out from the coco-caption definition:
    10 · mean over n = 1..4 of cos_n · exp(−δ²/(2·6²)), tf-idf weights tf·(log N − log df),
    cos_n = Σ min(h, r)·r / (|h|·|r|), δ = difference of the *bigram* counts (the scorer's quirk)."""
    def grams(words, n):
        out = {}
        for i in range(len(words) - n + 1):
            g = tuple(words[i:i + n])
            out[g] = out.get(g, 0) + 1
        return out

    total = 0.0
    delta = sum(grams(hyp, 2).values()) - sum(grams(ref, 2).values())
    for n in range(1, 5):
        h = {g: c * (math.log(n_images) - math.log(max(1.0, df.get(g, 0)))) for g, c in grams(hyp, n).items()}
        r = {g: c * (math.log(n_images) - math.log(max(1.0, df.get(g, 0)))) for g, c in grams(ref, n).items()}
        nh = math.sqrt(sum(v * v for v in h.values()))
        nr = math.sqrt(sum(v * v for v in r.values()))
        val = sum(min(v, r.get(g, 0.0)) * r.get(g, 0.0) for g, v in h.items())
        if nh and nr:
            val /= nh * nr
        total += val * math.exp(-(delta ** 2) / (2 * 6.0 ** 2))
    return 10 * total / 4


def self_test() -> None:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    failures = []

    def check(condition, message):
        if not condition:
            failures.append(message)
            print(f"FAIL: {message}")

    java = shutil.which("java") is not None
    if not java:
        print("note: java not found; PTB tokenization and METEOR are not exercised")

    # 1. By hand: image A predicted exactly, image B with "cats eat fresh" for "cats eat fresh fish"
    #    (no n-gram shared between images, so every document frequency is 1 and every weight log 2).
    #    A: every cos_n = 1 → CIDEr 10.  B: cos_1 = 3/(√3·2) = √3/2, cos_2 = 2/(√2·√3), cos_3 = 1/√2,
    #    cos_4 = 0, δ = 2 − 3 bigrams → 10 · (√3/2 + √(2/3) + 1/√2)/4 · e^(−1/72) = 5.89167…
    #    Corpus CIDEr = (10 + 5.89167)/2 = 7.94584 → ×100 = 794.58.
    by_hand = 10 * (math.sqrt(3) / 2 + math.sqrt(2 / 3) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72)
    check(abs(by_hand - 5.891672) < 1e-5, f"hand value {by_hand}")
    df = {}
    for words in ("dogs chase red balls".split(), "cats eat fresh fish".split()):
        for n in range(1, 5):
            for i in range(len(words) - n + 1):
                df[tuple(words[i:i + n])] = 1
    check(abs(_hand_cider("cats eat fresh".split(), "cats eat fresh fish".split(), 2, df) - by_hand) < 1e-9,
          "the written-out formula matches the hand value")
    gts = {0: ["dogs chase red balls"], 1: ["cats eat fresh fish"]}
    res = {0: ["dogs chase red balls"], 1: ["cats eat fresh"]}
    cider, per_image = Cider().compute_score(gts, res)
    check(abs(per_image[0] - 10) < 1e-9 and abs(per_image[1] - by_hand) < 1e-6 and abs(cider - (10 + by_hand) / 2) < 1e-6,
          f"pycocoevalcap Cider {cider} {list(per_image)} vs hand {(10 + by_hand) / 2}")

    # 2. The same case through files and the tool, both tokenizers.
    root = tempfile.mkdtemp(prefix="granule-score-selftest-")
    try:
        def write(name, rows):
            with open(os.path.join(root, name), "w") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
            return os.path.join(root, name)

        refs = write("refs.jsonl", [{"id": "imgA", "captions": ["Dogs chase red balls."], "target": "Dogs chase red balls."},
                                    {"id": "imgA", "captions": ["Dogs chase red balls."], "target": "Dogs chase red balls."},
                                    {"id": 7, "captions": ["cats eat fresh fish"]}])  # (a train-mode repeat above)
        preds = write("preds.jsonl", [{"id": 7, "prediction": "Cats eat fresh"}, {"id": "imgA", "prediction": "dogs chase red balls"}])
        for tok in (["simple", "ptb"] if java else ["simple"]):
            result = score(*load_pairs(preds, refs)[1:], metrics=("cider", "bleu"), tokenizer=tok)
            check(abs(result["CIDEr"] - 100 * (10 + by_hand) / 2) < 1e-6, f"{tok}: CIDEr {result['CIDEr']} != 794.58")
            bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
            check(abs(result["BLEU-4"] - 100 * bleu[3]) < 1e-9, f"{tok}: BLEU-4 {result['BLEU-4']} vs {100 * bleu[3]}")

        # 3. Identical predictions score high; a realistic PTB case checked against Cider directly.
        captions = [["A man is riding a horse on the beach.", "Someone rides a brown horse near the sea."],
                    ["Two cats sleep on a red couch.", "A pair of cats napping on a sofa."],
                    ["A plate of food with broccoli and rice.", "Rice and broccoli on a white plate."]]
        same = score([c[0] for c in captions], captions, metrics=("cider", "bleu", "meteor", "rouge"))
        check(same["CIDEr"] > 300 and same["BLEU-4"] > 80, f"identical predictions: {same}")
        if java:
            check("METEOR" in same and same["METEOR"] > 50, f"METEOR on identical predictions: {same}")
            from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

            with _quiet_stderr():
                g = PTBTokenizer().tokenize({i: [{"caption": c} for c in caps] for i, caps in enumerate(captions)})
                r = PTBTokenizer().tokenize({i: [{"caption": caps[0]}] for i, caps in enumerate(captions)})
            check(abs(same["CIDEr"] - 100 * Cider().compute_score(g, r)[0]) < 1e-9, "PTB CIDEr equals pycocoevalcap's")
        wrong = score(["a dog", "a car on a road", ""], captions, metrics=("cider",))
        check(wrong["CIDEr"] < 20, f"unrelated predictions: {wrong}")
        check(simple_tokenize("A man's hat, isn't it?") == "a man 's hat is n't it", f"simple: {simple_tokenize('A man' + chr(39) + 's hat, isn' + chr(39) + 't it?')}")

        # 4. The command line: output, --json, errors.
        import subprocess

        script = os.path.abspath(__file__)
        out_json = os.path.join(root, "scores.json")
        p = subprocess.run([sys.executable, script, preds, refs, "--json", out_json, "--metrics", "cider,bleu",
                            "--tokenizer", "simple"], capture_output=True, text=True)
        check(p.returncode == 0 and p.stdout.splitlines()[0] == "CIDEr 794.58", f"CLI: {p.returncode} {p.stdout!r} {p.stderr!r}")
        if p.returncode == 0:
            with open(out_json) as f:
                saved = json.load(f)
            check(abs(saved["CIDEr"] - 100 * (10 + by_hand) / 2) < 1e-6 and saved["images"] == 2, f"--json {saved}")
        if java:  # no java on PATH: the simple tokenizer and no METEOR, said in notes
            p = subprocess.run([sys.executable, script, preds, refs], capture_output=True, text=True,
                               env={**os.environ, "PATH": os.path.join(root, "empty")})
            lines = p.stdout.splitlines()
            check(p.returncode == 0 and lines[0] == "CIDEr 794.58" and "images 2, tokenizer simple" in lines
                  and "note: METEOR skipped: it needs java" in lines and any(l.startswith("note: java not found") for l in lines),
                  f"without java: {p.returncode} {p.stdout!r} {p.stderr!r}")
        dup = write("dup.jsonl", [{"id": 7, "prediction": "cats"}, {"id": 7, "prediction": "fish"}])
        p = subprocess.run([sys.executable, script, dup, refs], capture_output=True, text=True)
        check(p.returncode == 1 and p.stderr.strip() == f"error: {dup}: line 2: a second prediction for id 7", f"duplicate: {p.stderr!r}")
        few = write("few.jsonl", [{"id": 7, "prediction": "cats eat fresh"}])
        p = subprocess.run([sys.executable, script, few, refs], capture_output=True, text=True)
        check(p.returncode == 1 and "1 of 2 reference images have no prediction (first: \"imgA\")" in p.stderr, f"missing: {p.stderr!r}")
        bad = write("bad.jsonl", [{"id": 7, "prediction": 3}])
        p = subprocess.run([sys.executable, script, bad, refs], capture_output=True, text=True)
        check(p.returncode == 1 and p.stderr.strip() == f"error: {bad}: line 1: field 'prediction': expected a string", f"bad: {p.stderr!r}")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    if failures:
        print(f"self-test: {len(failures)} check(s) failed")
        sys.exit(1)
    print(f"self-test: all checks passed (hand-checked CIDEr {100 * (10 + by_hand) / 2:.2f} = (10 + {by_hand:.5f})/2 ×100"
          f"{'; PTB and METEOR with java' if java else ''})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", nargs="?", help="JSONL with \"id\" and \"prediction\"")
    parser.add_argument("references", nargs="?", help="JSONL with \"id\" and \"captions\" (the converter's OUT.references.jsonl)")
    parser.add_argument("--json", metavar="OUT", help="also write the scores as JSON")
    parser.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated subset of {','.join(METRICS)}")
    parser.add_argument("--tokenizer", choices=("auto", "ptb", "simple"), default="auto",
                        help="auto: PTBTokenizer if java is installed, else simple")
    parser.add_argument("--partial", action="store_true", help="score only the reference images that have a prediction")
    parser.add_argument("--self-test", action="store_true", help="check against a hand-computed CIDEr and pycocoevalcap")
    args = parser.parse_args(argv)
    if args.self_test:
        self_test()
        return 0
    if args.predictions is None or args.references is None:
        parser.error("PREDICTIONS and REFERENCES are required")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        parser.error(f"--metrics: unknown {', '.join(unknown) or '(empty)'}; choose from {','.join(METRICS)}")
    try:
        ids, predictions, references = load_pairs(args.predictions, args.references, args.partial)
        result = score(predictions, references, metrics, args.tokenizer)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_scores(result))
    if args.json:
        write_json_atomic(args.json, {**result, "predictions": os.path.basename(args.predictions),
                                      "references": os.path.basename(args.references)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
