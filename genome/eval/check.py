#!/usr/bin/env python3
"""Validate the Grid semantic-search evaluation set and measure lexical leakage.

Loads adapters.json and queries.json (next to this script by default),
checks the schema, and for every query reports the content words it shares
with its expected adapter's name + description + tags + examples.

A "content word" is a lowercased alphabetic token of at least 4 letters that
is not in a small stopword list. Two words match when they are equal or when
their simple stems (common suffixes stripped) are equal.

Usage: python3 check.py [adapters.json] [queries.json] [-v]
Exit status: 0 on success, 1 on schema errors, 2 if the overlap targets
(>= 80% zero-overlap queries, no query with more than 1 shared word) fail.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

MIN_ADAPTERS = 34
MIN_QUERIES = 70
MIN_EXAMPLES = 3
DESC_WORDS = (20, 60)
TAGS_RANGE = (2, 4)
NAME_RE = re.compile(r"^[a-z0-9-]+$")
TAG_RE = re.compile(r"^[a-z0-9-]+$")
SEMVER_RE = re.compile(r"^\d+\.\d+\.\d+$")

STOPWORDS = set("""
about above after again against also because been before being below between
both could does doing down during each even every from further have having
here into just more most much must only other over same should some such than
that their them then there these they this those through under until very
what when where which while will with would your yours youre dont cant isnt
wont doesnt didnt whats were well onto itself myself yourself
""".split())

SUFFIXES = ("ations", "ation", "tions", "tion", "ings", "ing", "ness", "ments",
            "ment", "ies", "ied", "ers", "er", "est", "ly", "es", "ed", "s")
E_SUFFIXES = {"ations", "ation", "ings", "ing", "ers", "er", "est", "es", "ed"}


def stems(word):
    """All simple stems of a word: the word itself plus every variant produced
    by stripping one common suffix (restoring a final 'e' or 'y' and undoubling
    a final consonant where that is plausible). Two words are considered the
    same when their stem sets intersect, e.g. notes/note, making/make,
    studies/study, planting/plants, stopped/stop."""
    out = {word}
    for suf in SUFFIXES:
        if word.endswith(suf) and len(word) - len(suf) >= 3:
            base = word[: -len(suf)]
            if suf in ("ies", "ied"):
                out.add(base + "y")
                continue
            out.add(base)
            if suf in E_SUFFIXES:
                out.add(base + "e")
            if len(base) >= 4 and base[-1] == base[-2] and base[-1] not in "aeiouls":
                out.add(base[:-1])
    return out


def content_words(text):
    words = re.findall(r"[a-z]+", text.lower().replace("'", ""))
    return {w for w in words if len(w) >= 4 and w not in STOPWORDS}


def overlap(query, adapter_words):
    """Return sorted query words matching adapter words exactly or by stem."""
    adapter_stems = set()
    for w in adapter_words:
        adapter_stems |= stems(w)
    hits = set()
    for w in content_words(query):
        if stems(w) & adapter_stems:
            hits.add(w)
    return sorted(hits)


def adapter_text(a):
    parts = [a["name"].replace("-", " "), a["description"], " ".join(a["tags"])]
    parts.extend(a["examples"])
    return " ".join(parts)


def validate(adapters, queries):
    errors = []
    if not isinstance(adapters, list):
        return ["adapters.json must be a JSON array"]
    if not isinstance(queries, list):
        return ["queries.json must be a JSON array"]
    names = set()
    for i, a in enumerate(adapters):
        where = f"adapter[{i}]"
        if not isinstance(a, dict):
            errors.append(f"{where}: not an object")
            continue
        for key, typ in (("name", str), ("version", str), ("description", str),
                         ("tags", list), ("examples", list)):
            if not isinstance(a.get(key), typ):
                errors.append(f"{where}: missing or wrong type for '{key}'")
        if errors and errors[-1].startswith(where):
            continue
        name = a["name"]
        where = f"adapter '{name}'"
        if not NAME_RE.match(name):
            errors.append(f"{where}: name must match [a-z0-9-]+")
        if name in names:
            errors.append(f"{where}: duplicate name")
        names.add(name)
        if not SEMVER_RE.match(a["version"]):
            errors.append(f"{where}: version '{a['version']}' is not x.y.z")
        nwords = len(a["description"].split())
        if not DESC_WORDS[0] <= nwords <= DESC_WORDS[1]:
            errors.append(f"{where}: description has {nwords} words, want {DESC_WORDS[0]}-{DESC_WORDS[1]}")
        if not TAGS_RANGE[0] <= len(a["tags"]) <= TAGS_RANGE[1]:
            errors.append(f"{where}: {len(a['tags'])} tags, want {TAGS_RANGE[0]}-{TAGS_RANGE[1]}")
        for t in a["tags"]:
            if not isinstance(t, str) or not TAG_RE.match(t):
                errors.append(f"{where}: bad tag {t!r} (lowercase [a-z0-9-])")
        if len(a["examples"]) < MIN_EXAMPLES:
            errors.append(f"{where}: {len(a['examples'])} examples, want >= {MIN_EXAMPLES}")
        for ex in a["examples"]:
            if not isinstance(ex, str) or not ex.strip():
                errors.append(f"{where}: empty or non-string example")
    if len(adapters) < MIN_ADAPTERS:
        errors.append(f"only {len(adapters)} adapters, want >= {MIN_ADAPTERS}")

    seen_queries = set()
    for i, q in enumerate(queries):
        where = f"query[{i}]"
        if not isinstance(q, dict) or not isinstance(q.get("query"), str) \
                or not isinstance(q.get("expected"), str):
            errors.append(f"{where}: must be {{'query': str, 'expected': str}}")
            continue
        if not q["query"].strip():
            errors.append(f"{where}: empty query")
        if q["expected"] not in names:
            errors.append(f"{where}: expected '{q['expected']}' is not an adapter name")
        key = q["query"].strip().lower()
        if key in seen_queries:
            errors.append(f"{where}: duplicate query {q['query']!r}")
        seen_queries.add(key)
    if len(queries) < MIN_QUERIES:
        errors.append(f"only {len(queries)} queries, want >= {MIN_QUERIES}")
    return errors


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    apath = args[0] if len(args) > 0 else os.path.join(HERE, "adapters.json")
    qpath = args[1] if len(args) > 1 else os.path.join(HERE, "queries.json")
    try:
        with open(apath, encoding="utf-8") as f:
            adapters = json.load(f)
        with open(qpath, encoding="utf-8") as f:
            queries = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"ERROR: cannot load input: {e}")
        return 1

    errors = validate(adapters, queries)
    if errors:
        print("SCHEMA ERRORS:")
        for e in errors:
            print("  - " + e)
        return 1

    by_name = {a["name"]: a for a in adapters}
    words = {n: content_words(adapter_text(a)) for n, a in by_name.items()}

    per_adapter = {n: 0 for n in by_name}
    results = []
    for q in queries:
        per_adapter[q["expected"]] += 1
        hits = overlap(q["query"], words[q["expected"]])
        results.append((q, hits))

    if verbose:
        print("Per-query overlap:")
        for q, hits in results:
            print(f"  [{len(hits)}] {q['expected']:<28} {q['query']}"
                  + (f"   <- {', '.join(hits)}" if hits else ""))
        print()

    n = len(results)
    zero = sum(1 for _, h in results if not h)
    avg = sum(len(h) for _, h in results) / n
    worst = max(len(h) for _, h in results)
    with_two = [(q, h) for q, h in results if len(h) >= 2]
    with_one = [(q, h) for q, h in results if len(h) == 1]
    under2 = sorted(k for k, v in per_adapter.items() if v < 2)

    print(f"adapters:                 {len(adapters)}")
    print(f"queries:                  {n}")
    print(f"adapters with >=2 queries: {len(adapters) - len(under2)}/{len(adapters)}")
    if under2:
        print(f"adapters with <2 queries: {', '.join(under2)}")
    print(f"queries with 0 overlap:   {zero} ({100.0 * zero / n:.1f}%)")
    print(f"queries with 1 overlap:   {len(with_one)}")
    print(f"average overlap (words):  {avg:.3f}")
    print(f"max overlap (words):      {worst}")
    if with_one:
        print("queries with exactly 1 shared word:")
        for q, h in with_one:
            print(f"  - [{q['expected']}] {q['query']!r}: {', '.join(h)}")
    print(f"queries with overlap >= 2: {len(with_two)}")
    for q, h in with_two:
        print(f"  - [{q['expected']}] {q['query']!r}: {', '.join(h)}")

    ok = zero / n >= 0.8 and worst <= 1
    print("targets (>=80% zero overlap, max overlap <= 1):", "PASS" if ok else "FAIL")
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
