"""Retrieval: embeddings, chunking, the vector store and RAG answering."""
