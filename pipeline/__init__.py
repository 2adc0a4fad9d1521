"""sling: documents in, a small RAG-tuned language model and honest benchmark numbers out."""
