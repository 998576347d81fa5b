"""REST API of the annotate app, one module per resource: batches, items, judgments, hits, exports, annotators.

Views stay thin: every action goes through the same function the pages use (annotate.services,
annotate.selectors, annotate.importers, annotate.export, annotate.quality). Staff reach everything;
annotators see active batches and only their own HITs and judgments (anyone else's is a 404, as if it
did not exist); anonymous requests are refused.
"""
