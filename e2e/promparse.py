#!/usr/bin/env python3
"""Parses a Prometheus text exposition on stdin with the official Python client's parser
(prometheus_client.parser.text_string_to_metric_families) and prints it as JSON:
[{"name", "type", "samples": [{"name", "labels", "value"}]}]. A text the parser refuses
exits non-zero. Used by e2e/metrics.mjs; runs in the venv scripts/e2e.sh keeps in its cache."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    text = sys.stdin.read()
    out = []
    for family in text_string_to_metric_families(text):
        samples = []
        for s in family.samples:
            value = s.value
            if math.isinf(value):
                value = "+Inf" if value > 0 else "-Inf"
            elif math.isnan(value):
                value = "NaN"
            samples.append({"name": s.name, "labels": dict(s.labels), "value": value})
        out.append({"name": family.name, "type": family.type, "samples": samples})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
