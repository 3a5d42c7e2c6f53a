"""`keelwatch simulate`: a deterministic generator of a running cluster's telemetry.

A seeded model of a cluster (``cluster``) produces benign traffic per source (``background``) in
each source's real wire format (``records``, ``manifests``); a catalogue of attack scenarios and
benign look-alikes (``scenarios``) is injected at chosen times and labelled (``generate``). The
result is written as files (``writers``) or streamed through a protocol (``stream``), and
Keelwatch's alerts are scored against the labels (``evaluate``).
"""
