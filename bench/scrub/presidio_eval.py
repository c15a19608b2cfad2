"""Run Presidio's pattern recognizers on the corpus (blank spaCy English
pipeline: no model download, no NER) and write spans like custos' predictor.

Usage: python presidio_eval.py CORPUS.jsonl OUT.jsonl [LIMIT]
Prints {"seconds": ..., "texts": N} (analysis time only, one thread).
"""
import json, sys, time

import spacy
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import SpacyNlpEngine


class BlankSpacyEngine(SpacyNlpEngine):
    """SpacyNlpEngine over spacy.blank("en"): tokenizer only."""

    def __init__(self):
        super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])

    def load(self):
        self.nlp = {"en": spacy.blank("en")}


ENTITIES = {"EMAIL_ADDRESS": "email", "CREDIT_CARD": "card", "IBAN_CODE": "iban",
            "IP_ADDRESS": "ip", "PHONE_NUMBER": "phone", "US_SSN": "us_ssn"}


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
    engine = BlankSpacyEngine()
    engine.load()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")][:limit]
    analyzer.analyze(text=texts[0], language="en", entities=list(ENTITIES))  # warm-up
    t = time.perf_counter()
    results = [analyzer.analyze(text=x, language="en", entities=list(ENTITIES)) for x in texts]
    secs = time.perf_counter() - t
    with open(out, "w") as fh:
        for rs in results:
            fh.write(json.dumps([[r.start, r.end, ENTITIES[r.entity_type]] for r in rs]) + "\n")
    print(json.dumps({"seconds": secs, "texts": len(texts)}))


if __name__ == "__main__":
    main()
