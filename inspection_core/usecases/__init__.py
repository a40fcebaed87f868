"""Use cases: what a user does, written once for the command line, the
desktop app and scripts (each adapter turns its inputs into a call here and
the result into text or pixels; see docs/architecture.md and ADR 0006).

- :mod:`.training`: train, evaluate on the test split, save the bundle;
- :mod:`.train_settings`: a user's settings laid over a preset, as configs;
- :mod:`.evaluate`: metrics of a bundle on a folder, and the report;
- :mod:`.calibrate`: score the allowed images, choose the threshold, save it;
- :mod:`.live`: run an inspection line (capture, score, record, keep images);
- :mod:`.fidelity`: check a fast scoring path on a bundle's own images.
"""
