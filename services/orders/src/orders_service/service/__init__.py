"""Use cases: ``orders`` (checkout, reads, cancel, staff moves and reviews), ``fraud``
(the rules' signals and decisions), ``privacy`` (export, erasure), ``transitions``
(every status change) and ``saga/`` (the checkout saga's steps, orchestrator and
runner)."""
