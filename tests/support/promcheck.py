#!/usr/bin/python3
"""tests/support/promcheck.py: parse a /metrics body with the Prometheus project's own
text parser (Debian's python3-prometheus-client) and print one line per sample,
"name{k=v,...} value", labels sorted, so that shell tests can grep exact figures.
Exits 1 with the parser's message when the exposition does not parse, or when a family
named on the command line is missing."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and friends on bad input
        print("parse error: %s" % e, file=sys.stderr)
        return 1
    names = {f.name for f in families}
    missing = [n for n in sys.argv[1:] if n not in names]
    if missing:
        print("missing families: %s" % " ".join(missing), file=sys.stderr)
        return 1
    for f in families:
        for s in f.samples:
            labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
            print("%s{%s} %s" % (s.name, labels, repr(float(s.value))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
