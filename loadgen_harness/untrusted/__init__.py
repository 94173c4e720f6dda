"""Reading what a submitter wrote: `tree` (a submission folder or archive, read with size,
depth and record bounds, strict JSON) and `safe` (its text made printable for a terminal, a
page or a CSV cell). The checker and the harness's report both read submissions through
these, so they sit below both (compliance -> loadgen_harness -> reference)."""
