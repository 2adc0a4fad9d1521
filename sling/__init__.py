"""The sling library: what the DVC stages in pipeline/ call. Grouped by concern: documents (reading and cleaning),
data (benchmark, synthetic and training sets), teacher (the teacher client, its cache, quality filters), models
(loading, precision, decoding, training), retrieval (embedding, chunking, the store, answering), scoring (metrics,
statistics, the report), tracking (MLflow, the registry, where a run ran); config, errors, paths and io at the top."""
