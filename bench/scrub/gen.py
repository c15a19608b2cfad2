"""Generate the labelled evaluation corpus and the throughput log files.

Usage: python gen.py OUT_DIR [--corpus N] [--log-mb MB]
Writes OUT_DIR/corpus.jsonl ({"text", "spans": [[start, end, label]]}, char
offsets), OUT_DIR/mixed.log (web-access, JSON and free-text lines, about one
personal value per line) and OUT_DIR/nonascii.log (the same, mostly in
non-Latin scripts). Deterministic (seeded).
"""
import argparse, base64, json, os, random, string
from faker import Faker

R = random.Random(6)
Faker.seed(6)
F = {loc: Faker(loc) for loc in ["en_US", "nl_NL", "de_DE", "fr_FR", "en_GB", "es_ES", "it_IT"]}
NONLATIN = [Faker("ja_JP"), Faker("ru_RU"), Faker("zh_CN"), Faker("el_GR")]
for f in list(F.values()) + NONLATIN:
    f.seed_instance(R.randint(0, 1 << 30))

def luhn_ok(d):
    s = 0
    for i, ch in enumerate(reversed(d)):
        x = int(ch)
        if i % 2: x = x * 2 - 9 if x > 4 else x * 2
        s += x
    return s % 10 == 0

# ------------------------------------------------------------ values
def email():
    f = F[R.choice(list(F))]
    r = R.random()
    if r < 0.15:
        return f.user_name() + "+" + R.choice(["news", "shop", "x1"]) + "@" + f.free_email_domain()
    if r < 0.25:
        name = R.choice(["jürgen", "zoë", "françois", "søren", "josé"])
        return name + "@" + R.choice(["müller.de", "example.com", "société.fr"])
    return f.email()

def ip():
    r = R.random()
    if r < 0.6: return "ipv4", F["en_US"].ipv4_public()
    if r < 0.75: return "ipv4", F["en_US"].ipv4_private()
    return "ipv6", F["en_US"].ipv6()

def phone():
    n = lambda k: "".join(R.choice(string.digits) for _ in range(k))
    area = R.choice(["212", "415", "646", "312", "617", "206", "303"])
    exch = str(R.randint(200, 999)).replace("555", "556")
    forms = [
        lambda: "+31 6 " + n(8), lambda: "06-" + n(8), lambda: "+31 20 " + n(3) + " " + n(4),
        lambda: "+44 7911 " + n(6), lambda: "+44 20 7946 " + n(4),
        lambda: f"({area}) {exch}-{n(4)}", lambda: f"{area}-{exch}-{n(4)}", lambda: f"+1 {area} {exch} {n(4)}",
        lambda: "+49 151 " + n(8), lambda: "+49 30 " + n(8),
        lambda: "+33 6 " + " ".join(n(2) for _ in range(4)), lambda: "06 " + " ".join(n(2) for _ in range(4)),
    ]
    return R.choice(forms)()

def card():
    f = F["en_US"]
    t = R.choice(["visa16", "mastercard", "amex", "discover", "visa16"])
    num = f.credit_card_number(card_type=t)
    r = R.random()
    if len(num) == 16 and r < 0.3: return " ".join(num[i:i+4] for i in range(0, 16, 4))
    if len(num) == 16 and r < 0.45: return "-".join(num[i:i+4] for i in range(0, 16, 4))
    return num

def iban():
    v = F[R.choice(["nl_NL", "de_DE", "fr_FR", "en_GB", "es_ES", "it_IT"])].iban()
    return " ".join(v[i:i+4] for i in range(0, len(v), 4)) if R.random() < 0.4 else v

def ssn():
    while True:
        a, g, s = R.randint(1, 899), R.randint(1, 99), R.randint(1, 9999)
        if a != 666: return f"{a:03d}-{g:02d}-{s:04d}"

def bsn():
    while True:
        d = [R.randint(0, 9) for _ in range(8)]
        s = sum(w * x for w, x in zip(range(9, 1, -1), d))
        if s % 11 < 10 and (d[0] or d[1]):
            return "".join(map(str, d)) + str(s % 11)

def dni():
    n = R.randint(10000000, 99999999)
    return f"{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"

def nino():
    while True:
        p = R.choice("ABCEGHJKLMNPRSTWXYZ") + R.choice("ABCEGHJKLMNPRSTWXYZ")
        if p not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
            return p + "".join(R.choice(string.digits) for _ in range(6)) + R.choice("ABCD")

def nir():
    body = f"{R.randint(1,2)}{R.randint(40,99):02d}{R.randint(1,12):02d}{R.randint(1,95):02d}{R.randint(1,999):03d}{R.randint(1,999):03d}"
    key = 97 - int(body) % 97
    return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"

def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def jwt():
    return ".".join([b64u(b'{"alg":"HS256","typ":"JWT"}'), b64u(json.dumps({"sub": R.randint(1, 10**9)}).encode()),
                     b64u(bytes(R.getrandbits(8) for _ in range(32)))])

def aws():
    return "AKIA" + "".join(R.choice(string.ascii_uppercase + "234567") for _ in range(16))

GENS = [("email", email, 5), ("ip", None, 4), ("phone", phone, 4), ("card", card, 3), ("iban", iban, 3),
        ("us_ssn", ssn, 2), ("nl_bsn", bsn, 1), ("es_dni", dni, 1), ("uk_nino", nino, 1), ("fr_nir", nir, 1),
        ("jwt", jwt, 1), ("aws_key", aws, 1)]

def value():
    label, g, _ = R.choices(GENS, weights=[w for *_, w in GENS])[0]
    if label == "ip":
        return ip()
    return label, g()

# ------------------------------------------------------- near misses
def near_miss():
    n = lambda k: "".join(R.choice(string.digits) for _ in range(k))
    forms = [
        lambda: str(R.randint(1_600_000_000_000, 1_800_000_000_000)),               # ms timestamps
        lambda: "4" + next(x for x in iter(lambda: n(15), None) if not luhn_ok("4" + x)),  # order no., bad Luhn
        lambda: str(F["en_US"].uuid4()),
        lambda: "version " + ".".join(str(R.randint(0, 20)) for _ in range(4)),
        lambda: F["en_US"].date_time().strftime("%Y-%m-%d %H:%M:%S"),
        lambda: F["en_US"].date_time().strftime("%d.%m.%Y"),
        lambda: str(R.randint(1_600_000_000, 1_800_000_000)),                       # epoch seconds
        lambda: "order #" + n(10), lambda: "v" + ".".join(str(R.randint(0, 9)) for _ in range(3)),
        lambda: F["en_US"].sha1()[:12], lambda: str(R.randint(100, 99999)) + " bytes",
        lambda: f"{R.randint(0,23):02d}:{R.randint(0,59):02d}:{R.randint(0,59):02d}",
        lambda: "latency " + str(R.random() * 1000)[:7] + "ms",
    ]
    return R.choice(forms)()

# --------------------------------------------------------- templates
PREFIX_TEXT = ["Please contact {} for details.", "Customer {} called about the invoice.", "Update: {} was changed yesterday.",
               "Bitte melden Sie sich unter {}.", "Le client {} a été débité.", "Ref {} noted by support"]

def line(slots, nonascii=False):
    """Build one line from (label or None, text) slots; returns text and char spans."""
    f = R.choice(NONLATIN) if nonascii else F["en_US"]
    kind = R.random()
    parts, spans = [], []
    def add(s, label=None):
        pos = sum(len(p) for p in parts)
        if label: spans.append([pos, pos + len(s), label])
        parts.append(s)
    if kind < 0.35:   # web access log
        add(F["en_US"].ipv4_public(), "ipv4")  # the client address: personal data too
        ts = F["en_US"].date_time().strftime("%d/%b/%Y:%H:%M:%S +0000")
        add(f'- - [{ts}] "GET /api/v1/items/{R.randint(1,99999)}?q=')
        for lab, txt in slots:
            add(txt, lab); add("&x=")
        add(f' HTTP/1.1" {R.choice([200, 200, 304, 404, 500])} {R.randint(100, 99999)} "-" "Mozilla/5.0 ({f.word()})"')
    elif kind < 0.65:  # JSON log
        ts = F["en_US"].date_time().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        add('{"ts":"' + ts + '","level":"' + R.choice(["info", "warn", "error"]) + '","msg":"' + f.sentence(nb_words=5)[:-1] + '"')
        for lab, txt in slots:
            add(',"' + R.choice(["user", "value", "contact", "data"]) + '":"'); add(txt, lab); add('"')
        add(',"request_id":"' + str(F["en_US"].uuid4()) + '","duration_ms":' + str(R.randint(1, 5000)) + "}")
    else:  # free text
        add(f.sentence(nb_words=6) + " ")
        for lab, txt in slots:
            tpl = R.choice(PREFIX_TEXT)
            a, b = tpl.split("{}")
            add(a); add(txt, lab); add(b + " ")
        add(f.sentence(nb_words=4))
    return "".join(parts), spans

def slots_for_line(p_value=0.9):
    slots = []
    if R.random() < p_value:
        slots.append(value())
    if R.random() < 0.5:
        slots.append((None, near_miss()))
    R.shuffle(slots)
    return slots

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--corpus", type=int, default=20000)
    ap.add_argument("--log-mb", type=int, default=1024)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "corpus.jsonl"), "w", encoding="utf-8") as fh:
        for _ in range(a.corpus):
            text, spans = line(slots_for_line(0.85))
            fh.write(json.dumps({"text": text, "spans": spans}, ensure_ascii=False) + "\n")
    for name, nonascii in [("mixed.log", False), ("nonascii.log", True)]:
        pool = ["".join(line(slots_for_line(0.95), nonascii)[0]) + "\n" for _ in range(50000)]
        pool = [p.encode("utf-8") for p in pool]
        target = a.log_mb * 1024 * 1024
        with open(os.path.join(a.out, name), "wb") as fh:
            written = 0
            while written < target:
                chunk = b"".join(R.choices(pool, k=5000))
                fh.write(chunk); written += len(chunk)

if __name__ == "__main__":
    main()
