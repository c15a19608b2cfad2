"""Score custos and Presidio predictions against the corpus and print one
comparative report (markdown). A prediction is a true positive when it
overlaps an unmatched gold span of the same kind (IPv4 and IPv6 are also
pooled as `ip` for the comparison with Presidio, which has one IP entity).

Usage: python report.py CORPUS custos_pred presidio_pred custos_time.json presidio_time.json tp_mixed.json tp_nonascii.json
"""
import json, sys
from collections import Counter

def load(path, limit=None):
    return [json.loads(l) for l in open(path, encoding="utf-8")][:limit]

def score(gold, pred, pool_ip):
    tp, fp, fn = Counter(), Counter(), Counter()
    for g_spans, p_spans in zip(gold, pred):
        norm = lambda l: "ip" if pool_ip and l in ("ipv4", "ipv6") else l
        g = [(s, e, norm(l)) for s, e, l in g_spans]
        used = set()
        for s, e, l in p_spans:
            l = norm(l)
            hit = next((i for i, (gs, ge, gl) in enumerate(g) if i not in used and gl == l and s < ge and gs < e), None)
            if hit is None:
                fp[l] += 1
            else:
                used.add(hit); tp[l] += 1
        for i, (_, _, l) in enumerate(g):
            if i not in used:
                fn[l] += 1
    out = {}
    for l in set(tp) | set(fp) | set(fn):
        p = tp[l] / (tp[l] + fp[l]) if tp[l] + fp[l] else 0.0
        r = tp[l] / (tp[l] + fn[l]) if tp[l] + fn[l] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[l] = (p, r, f, tp[l], fp[l], fn[l])
    return out

def main():
    corpus, cpred, ppred, ctime, ptime, tmix, tnon = sys.argv[1:8]
    gold = [r["spans"] for r in load(corpus)]
    c, p = load(cpred), load(ppred)
    ct, pt = json.load(open(ctime)), json.load(open(ptime))
    n = len(p)
    print(f"## custos-scrub vs Presidio pattern recognizers\n")
    print(f"Corpus: {len(gold)} labelled lines ({n} for Presidio).\n")
    print("| kind | custos P | R | F1 | Presidio P | R | F1 |")
    print("|---|---|---|---|---|---|---|")
    cs, ps = score(gold[:n], c[:n], True), score(gold[:n], p, True)
    for k in ["email", "card", "iban", "ip", "phone", "us_ssn"]:
        a, b = cs.get(k, (0,) * 6), ps.get(k, (0,) * 6)
        print(f"| {k} | {a[0]:.3f} | {a[1]:.3f} | **{a[2]:.3f}** | {b[0]:.3f} | {b[1]:.3f} | **{b[2]:.3f}** |")
    print("\n### custos, every detector, full corpus\n")
    print("| detector | P | R | F1 | TP | FP | FN |")
    print("|---|---|---|---|---|---|---|")
    for k, (pp, r, f, tp_, fp_, fn_) in sorted(score(gold, c, False).items()):
        print(f"| {k} | {pp:.3f} | {r:.3f} | {f:.3f} | {tp_} | {fp_} | {fn_} |")
    c_per = ct["seconds"] / ct["texts"]
    p_per = pt["seconds"] / pt["texts"]
    print("\n### Speed\n")
    print(f"- detection per line: custos {c_per * 1e6:.2f} µs, Presidio {p_per * 1e6:.0f} µs → custos is **{p_per / c_per:,.0f}×** faster")
    for path in (tmix, tnon):
        t = json.load(open(path))
        print(f"- `{t['file']}`: **{t['mb_per_s']:.0f} MB/s**, {t['lines_per_s']:,.0f} lines/s (one core, all detectors, median)")

if __name__ == "__main__":
    main()
