"""The meta-analysis engine.

A pure numpy/scipy implementation of the statistics the platform reports, matching R's
metafor (Viechtbauer 2010) definitions, defaults and edge cases. It imports nothing from
Django so that it can run in a worker, in the command-line tool and in benchmarks alike.
"""

ENGINE_VERSION = "1.1.0"  # 1.1: figure blocks (weights, Baujat, Egger line), the measure domains
