"""Model engine: registry, scheduler, architecture tables, hooks. The only place torch runs.

How a request flows: a servicer (api/) validates it and calls an entry point in `serving.py`
(or `registry.capture`, or an extraction job). The entry point tokenizes on the tokenizer pool
(`tokens.py`), builds a typed work item and submits it to the device's `Scheduler`
(`scheduler.py`), whose one thread runs every forward on that device: forward-only rows of
concurrent requests coalesced into shared forwards (`capture.py`, `steering.last_logprobs`),
Generate rows by continuous batching (`decoding.py`). Results come back as plain tensors and are
converted, matched (`detection.py`) and decoded on the pool again.

A new kind of work plugs in at three places of `scheduler.py`: a `Work` dataclass (the model, the
rows it needs, what it returns), a rule for which queued items may share a forward
(`_compatible`), and the device-side function that runs one batch of them (`_forward_rows`, or a
group like `decoding.Group` for work that lives across steps). Keep host work out of that
function: the device thread should only run the device.
"""
