"""Winnower: a model of what replicated nodes (or the runs of one pipeline) normally do.

A provenance graph (`pgraph`) is abstracted into labels free of instance detail
(`abstraction`), its vertices are merged into the states of a deterministic model by label and
structure to depth k (`induction`), every state and transition counts which nodes or runs
exhibited it and how often (`model`), a node sends only what the global model does not yet
accept (`delta`), and rare or new behaviour is ranked (`anomalies`). `runs` treats the runs of
a pipeline as replicas; `agent` and `monitor` are the two ends on the bus; `graph` reads
provenance from the store and `persist` keeps the model there.
"""
