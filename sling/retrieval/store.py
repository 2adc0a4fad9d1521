"""The vector store: a Qdrant client (embedded at `rag.qdrant_path`, or a server at `rag.qdrant_url`), each task's
collection name, and writing chunks with their vectors. Read by answering, written by the index stage.
"""
from __future__ import annotations

from sling.config import resolve_path
from sling.errors import UserError
from sling.schema import Rag


def qdrant_client(rag: Rag):
    from qdrant_client import QdrantClient
    from qdrant_client.http.exceptions import ApiException

    if rag.qdrant_url:
        client = QdrantClient(url=rag.qdrant_url)
        try:
            client.get_collections()
        except ApiException as e:  # refused, unresolvable, timed out, or not a Qdrant server
            raise UserError(f"the Qdrant server at rag.qdrant_url={rag.qdrant_url} does not answer ({e}): start it, "
                            "fix rag.qdrant_url, or set rag.qdrant_url=null for the embedded store at "
                            "rag.qdrant_path") from e
        return client
    path = resolve_path(rag.qdrant_path)
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


def collection_name(rag: Rag, task: str) -> str:
    return f"{rag.collection_prefix}_{task}"


def upsert(client, name: str, chunks: list[dict], vectors) -> None:
    from qdrant_client import models as qm

    dim = int(vectors.shape[1])
    if client.collection_exists(name):
        info = client.get_collection(name)
        if info.config.params.vectors.size != dim:
            client.delete_collection(name)
    if not client.collection_exists(name):
        client.create_collection(name, vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE))
    points = [qm.PointStruct(id=c["id"], vector=v.tolist(), payload=c) for c, v in zip(chunks, vectors)]
    client.upsert(name, points=points, wait=True)
    keep = {c["id"] for c in chunks}
    stale, offset = [], None
    while True:
        page, offset = client.scroll(name, limit=256, offset=offset, with_payload=False, with_vectors=False)
        stale += [p.id for p in page if str(p.id) not in keep]
        if offset is None:
            break
    if stale:
        client.delete(name, points_selector=qm.PointIdsList(points=stale), wait=True)

