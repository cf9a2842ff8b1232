"""The embedded default collection: a small, seeded, synthetic-but-English retrieval test collection.

Topics pair a *concept* (car, physician, ...) with an *aspect* (price, safety, ...). Every concept and aspect has real
English synonyms, and documents about a topic often use a synonym rather than the query's word — vocabulary
mismatch that BM25 misses and a trained cross-encoder can learn (the same concepts recur in train and test topics,
always in new combinations). Distractors share the query's words without its meaning ("unlike a car, a bicycle's
price ..."), and overview documents mention a concept with many aspects in passing (grade 1).

Grades: 3 = about the concept and the aspect in detail; 2 = about both, briefly; 1 = about the concept, the aspect in
passing; 0 = anything else. Files are written in standard formats (docs.jsonl, queries.tsv, TREC qrels, TREC run of
bm25s top-100, splits.json) and read back by the same loader as user data (``trec-dir``).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from .cache import build_once, cache_root

VERSION = 1
SEED = 13
SPLITS = {"train": 200, "dev": 40, "test": 60}
BACKGROUND = 800  # documents about topics no query asks for

CONCEPTS = [
    ("car", "automobile", "motor vehicle"), ("physician", "doctor", "medical practitioner"),
    ("bicycle", "bike", "cycle"), ("house", "home", "dwelling"), ("lawyer", "attorney", "legal counsel"),
    ("ship", "vessel", "boat"), ("airplane", "aircraft", "jet"), ("child", "kid", "youngster"),
    ("teacher", "instructor", "educator"), ("computer", "pc", "workstation"), ("phone", "telephone", "handset"),
    ("dog", "canine", "puppy"), ("cat", "feline", "kitten"), ("river", "stream", "waterway"),
    ("mountain", "peak", "summit"), ("forest", "woodland", "woods"), ("sofa", "couch", "settee"),
    ("shop", "store", "retailer"), ("film", "movie", "motion picture"), ("song", "tune", "melody"),
    ("garden", "yard", "backyard"), ("kitchen", "cookhouse", "galley"), ("medicine", "medication", "drug"),
    ("illness", "disease", "sickness"), ("job", "occupation", "profession"), ("salary", "wage", "pay"),
    ("trip", "journey", "voyage"), ("road", "street", "highway"), ("truck", "lorry", "pickup"),
    ("money", "cash", "currency"), ("bank", "lender", "financial institution"), ("school", "academy", "college"),
    ("student", "pupil", "learner"), ("book", "novel", "volume"), ("library", "archive", "reading room"),
    ("hotel", "inn", "lodge"), ("restaurant", "diner", "eatery"), ("meal", "dinner", "feast"),
    ("coffee", "espresso", "brew"), ("beer", "ale", "lager"), ("farm", "ranch", "homestead"),
    ("horse", "pony", "stallion"), ("rain", "shower", "downpour"), ("storm", "tempest", "gale"),
    ("ocean", "sea", "marine waters"), ("island", "isle", "atoll"), ("city", "metropolis", "town"),
    ("village", "hamlet", "settlement"), ("factory", "plant", "mill"), ("engine", "motor", "turbine"),
    ("battery", "cell", "accumulator"), ("camera", "camcorder", "lens"), ("clock", "watch", "timepiece"),
    ("jacket", "coat", "parka"), ("shoe", "boot", "sneaker"), ("hospital", "clinic", "infirmary"),
    ("nurse", "caregiver", "carer"), ("police", "officer", "constable"), ("soldier", "trooper", "serviceman"),
    ("president", "leader", "head of state"),
]
ASPECTS = [
    ("price", "cost", "expense"), ("safety", "security", "protection"), ("history", "origin", "background"),
    ("repair", "fixing", "maintenance"), ("size", "dimensions", "measurements"), ("speed", "pace", "velocity"),
    ("training", "education", "instruction"), ("insurance", "coverage", "policy"),
    ("cleaning", "washing", "hygiene"), ("design", "layout", "style"), ("rules", "regulations", "laws"),
    ("noise", "sound", "loudness"), ("weight", "mass", "heaviness"), ("color", "colour", "shade"),
    ("lifespan", "durability", "longevity"), ("rental", "hire", "lease"), ("energy use", "power consumption",
                                                                          "fuel use"),
    ("storage", "keeping", "warehousing"), ("selection", "choosing", "picking"), ("risks", "dangers", "hazards"),
]
QUERY_TEMPLATES = [
    "{c} {a}", "what is the {a} of a {c}", "how to find out the {a} for a {c}", "{a} of {c}",
    "information about {c} {a}", "typical {c} {a}",
]
DETAIL = [
    "Experts note that the {a} of a {c} depends on many factors.",
    "When people ask about {c} {a}, the answer usually starts with a few simple facts.",
    "For any {c}, the question of {a} comes up early and often.",
    "A careful look at the {a} shows why every {c} owner should plan ahead.",
    "Most guides on {a} treat the {c} as a special case worth studying.",
    "The {a} of the average {c} has changed a lot over the past decade.",
    "Comparing the {a} across each kind of {c} reveals large differences.",
    "Anyone responsible for a {c} should keep records of its {a}.",
]
DISTRACT = [
    "Unlike a {q}, a {c} has a very different {a}, so the two should not be confused.",
    "This note is about the {a} of a {c}; it does not cover the {q} at all.",
    "People often mention the {q} in passing, but here the topic is the {a} of a {c}.",
]
OVERVIEW = "An overview of the {c}: it touches on {a1}, {a2}, {a3} and {a4}, but only briefly."
FILLER = [
    "The weather was mild that week.", "Many readers found this useful.", "Further details follow below.",
    "Local newspapers reported on it.", "The figures were updated last year.", "Opinions differ widely.",
    "Several surveys point in the same direction.", "It remains a popular subject of discussion.",
]


def _pick(rng: random.Random, options: tuple[str, ...], avoid: str | None = None) -> str:
    pool = [o for o in options if o != avoid] or list(options)
    return rng.choice(pool)


def generate(out: Path) -> None:
    """Write the collection into ``out`` (deterministic for a given VERSION and SEED)."""
    from .dataset_rows import EMBEDDED_BM25
    from .firststage import bm25_run, write_trec_run

    rng = random.Random(SEED)
    topics = [(c, a) for c in range(len(CONCEPTS)) for a in range(len(ASPECTS))]
    rng.shuffle(topics)
    topics = topics[:sum(SPLITS.values())]
    docs: dict[str, str] = {}
    doc_topic: dict[str, tuple[int, int, int]] = {}  # docid -> (concept, aspect, grade-if-matching)
    overview_aspects: dict[str, set[int]] = {}  # overview docid -> the aspects it mentions in passing

    def add_doc(sentences: list[str], concept: int, aspect: int, grade: int) -> None:
        did = f"D{len(docs):05d}"
        rng.shuffle(fill := list(FILLER))
        text = " ".join(sentences + fill[:rng.randint(1, 3)])
        docs[did] = text[0].upper() + text[1:]
        doc_topic[did] = (concept, aspect, grade)

    queries: dict[str, str] = {}
    query_words: dict[str, tuple[str, str]] = {}
    for ti, (c, a) in enumerate(topics):
        qc, qa = rng.choice(CONCEPTS[c]), rng.choice(ASPECTS[a])
        qid = f"Q{ti:03d}"
        queries[qid] = rng.choice(QUERY_TEMPLATES).format(c=qc, a=qa)
        query_words[qid] = (qc, qa)
        for grade, n_sent, mismatch in ((3, 4, False), (3, 3, True), (2, 2, False), (2, 2, True)):
            # Half the relevant docs use only one of the query's two words, once (the rest are synonyms): BM25
            # still retrieves them but ranks them below distractors; the others mix query words and synonyms.
            keep = rng.choice(("concept", "aspect"))
            sents = []
            for i in range(n_sent):
                keep_c = not mismatch and rng.random() < 0.6 or mismatch and i == 0 and keep == "concept"
                keep_a = not mismatch and rng.random() < 0.6 or mismatch and i == 0 and keep == "aspect"
                dc = qc if keep_c else _pick(rng, CONCEPTS[c], avoid=qc)
                da = qa if keep_a else _pick(rng, ASPECTS[a], avoid=qa)
                sents.append(rng.choice(DETAIL).format(c=dc, a=da))
            add_doc(sents, c, a, grade)
        for _ in range(2):
            # Distractors repeat the query's exact words but are about another concept.
            other = rng.choice([i for i in range(len(CONCEPTS)) if i != c])
            oc = rng.choice(CONCEPTS[other])
            sents = [rng.choice(DISTRACT).format(q=qc, c=oc, a=qa),
                     rng.choice(DETAIL).format(c=oc, a=qa)]
            add_doc(sents, other, a, 3)
    # Background: documents about concept/aspect combinations no query asks for (they share words with queries).
    asked = set(topics)
    unasked = [(c, a) for c in range(len(CONCEPTS)) for a in range(len(ASPECTS)) if (c, a) not in asked]
    for c, a in rng.sample(unasked, BACKGROUND):
        sents = [rng.choice(DETAIL).format(c=rng.choice(CONCEPTS[c]), a=rng.choice(ASPECTS[a]))
                 for _ in range(rng.randint(2, 4))]
        add_doc(sents, c, a, 3)
    for c, names in enumerate(CONCEPTS):
        for _ in range(2):
            a1, a2, a3, a4 = rng.sample(range(len(ASPECTS)), 4)
            text = OVERVIEW.format(c=rng.choice(names), a1=ASPECTS[a1][0], a2=ASPECTS[a2][1], a3=ASPECTS[a3][2],
                                   a4=ASPECTS[a4][0])
            add_doc([text], c, -1, 1)
            doc_topic[list(docs)[-1]] = (c, -1, 1)
            overview_aspects[list(docs)[-1]] = {a1, a2, a3, a4}

    qrels: dict[str, dict[str, int]] = {}
    topic_of = {f"Q{ti:03d}": t for ti, t in enumerate(topics)}
    for qid, (c, a) in topic_of.items():
        rels = {}
        for did, (dc, da, g) in doc_topic.items():
            if dc == c and da == a:
                rels[did] = g
            elif dc == c and da == -1 and a in overview_aspects.get(did, ()):
                rels[did] = 1
        qrels[qid] = rels

    qids = list(queries)
    splits, start = {}, 0
    for name, n in SPLITS.items():
        splits[name] = qids[start:start + n]
        start += n

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "docs.jsonl", "w", encoding="utf-8") as fh:
        for did, text in docs.items():
            fh.write(json.dumps({"doc_id": did, "text": text}) + "\n")
    (out / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()), encoding="utf-8")
    (out / "qrels.txt").write_text("".join(f"{q} 0 {d} {g}\n" for q, rels in qrels.items()
                                           for d, g in sorted(rels.items())), encoding="utf-8")
    (out / "splits.json").write_text(json.dumps(splits, indent=1), encoding="utf-8")
    write_trec_run(bm25_run(docs, queries, EMBEDDED_BM25, k=100), out / "run.bm25.txt", tag="bm25s")


def _fingerprint() -> str:
    src = Path(__file__).read_bytes()
    return hashlib.sha256(src + str(VERSION).encode()).hexdigest()[:12]


def embedded_dir() -> Path:
    """Directory holding the generated collection; generated on first use (once across processes sharing the
    cache, :func:`benchmark.cache.build_once`), then cached."""
    def build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        generate(tmp)

    return build_once(cache_root() / "embedded" / _fingerprint(), build,
                      ready=lambda path: (path / "run.bm25.txt").exists())
