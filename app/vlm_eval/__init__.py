"""``visrag evaluate-vlm``: does a VLM answer better with visrag's context in its prompt?

One straight line: held-out queries -> their contexts (:mod:`.contexts`, in-process through the
evaluation's Retriever or from a running service) -> one chat request per (query, arm)
(:mod:`.prompts`) -> the endpoint, through the answer cache (:mod:`.chat`, :mod:`.cache`) -> the
parsed answers (:mod:`.answers`) -> scores and paired intervals (:mod:`.scores`) -> the report
(:mod:`.report`). :mod:`.experiment` runs the line.
"""
