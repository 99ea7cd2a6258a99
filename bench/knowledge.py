"""Knowledge: ingestion throughput (extraction + chunking) and search latency and recall at 100,000 chunks.

1. Ingestion, embedding excluded, one row per format against its same-run floor:
   - plain text and Markdown (a synthetic corpus of ``--mb`` MB): the floor is decoding the bytes (what any
     text extractor does first); ours is ``Extractors.extract`` + ``chunk_document`` (200-token chunks, 40 of
     overlap). The seed asks for more than 100 MB/s.
   - PDF (``--pages`` pages made with fpdf2): the floor is pypdf called directly (``PdfReader`` and
     ``extract_text`` of every page); ours is the PDF extractor + chunking.
2. Search, 100,000 x 384 synthetic unit vectors (clustered like sentence embeddings: 1,000 centres plus
   noise), 200 queries from the same distribution, top 10:
   - the embedded default, ``VectorMatrix`` (exact cosine over one numpy matrix), against plain brute force;
   - PostgreSQL with pgvector (a private PostgreSQL 16 from the pgserver wheel, HNSW m=16,
     ef_construction=64, cosine), at several ``hnsw.ef_search``, the query as the service sends it.
   p50/p99 latency per query and recall@10 against exact brute force (the target is >= 0.95).

    .venv/bin/python bench/knowledge.py [--mb 20] [--pages 60] [--chunks 100000] [--queries 200] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from agentadapter.knowledge import ChunkingOptions, VectorMatrix, chunk_document, default_extractors
from agentadapter.knowledge.search import to_blob

WORDS = ["tide", "moon", "ocean", "gravity", "water", "level", "rises", "falls", "twice", "daily", "coast", "harbour", "ship", "storm", "lighthouse", "keeper", "revenue", "quarter", "growth", "policy", "refund", "customer", "river", "valley", "rain", "sensor", "index", "query", "document"]


def corpus(megabytes: float, markdown: bool, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    section = 0
    while size < megabytes * 1_000_000:
        if markdown and rng.random() < 0.08:
            section += 1
            block = f"{'#' * rng.randint(1, 3)} Section {section} about {rng.choice(WORDS)}"
        else:
            sentences = []
            for _ in range(rng.randint(2, 8)):
                words = [rng.choice(WORDS) for _ in range(rng.randint(6, 24))]
                sentences.append(" ".join(words).capitalize() + ".")
            block = " ".join(sentences)
        parts.append(block)
        size += len(block) + 2
    return "\n\n".join(parts).encode()


def make_pdf(pages: int) -> bytes:
    from fpdf import FPDF

    rng = random.Random(5)
    document = FPDF()
    document.set_font("helvetica", size=10)
    for _ in range(pages):
        document.add_page()
        document.multi_cell(0, 5, " ".join(rng.choice(WORDS) for _ in range(450)))
    return bytes(document.output())


def best_of(runs: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def ingestion(megabytes: float, pages: int, runs: int) -> list[list[str]]:
    extractors = default_extractors()
    options = ChunkingOptions()
    rows = []
    for label, data, media_type in (("plain text", corpus(megabytes, False), "text/plain"),
                                    ("Markdown", corpus(megabytes, True), "text/markdown")):
        floor = best_of(runs, lambda data=data: data.decode("utf-8"))
        ours = best_of(runs, lambda data=data, media_type=media_type: chunk_document(
            extractors.extract(data, media_type), options))
        size = len(data) / 1e6
        chunks = len(chunk_document(extractors.extract(data, media_type), options))
        rows.append([label, f"{size:.1f} MB", f"{size / floor:,.0f}", f"{size / ours:,.1f}", f"{ours / floor:,.1f}x",
                     f"{chunks:,}"])
    data = make_pdf(pages)

    def pypdf_alone() -> None:
        import io

        from pypdf import PdfReader

        for page in PdfReader(io.BytesIO(data)).pages:
            page.extract_text()

    floor = best_of(runs, pypdf_alone)
    ours = best_of(runs, lambda: chunk_document(extractors.extract(data, "application/pdf"), options))
    size = len(data) / 1e6
    chunks = len(chunk_document(extractors.extract(data, "application/pdf"), options))
    rows.append([f"PDF ({pages} pages)", f"{size:.2f} MB", f"{size / floor:,.2f}", f"{size / ours:,.2f}",
                 f"{ours / floor:,.2f}x", f"{chunks:,}"])
    return rows


def synthetic(n: int, queries: int, dims: int = 384, seed: int = 11) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dims), dtype=np.float32)

    def points(count: int) -> np.ndarray[Any, Any]:
        chosen = centres[rng.integers(0, len(centres), count)]
        values = chosen + 0.6 * rng.standard_normal((count, dims), dtype=np.float32)
        return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)

    return points(n), points(queries)


def exact_top(matrix: np.ndarray[Any, Any], query: np.ndarray[Any, Any], k: int) -> list[int]:
    scores = matrix @ query
    return [int(i) for i in np.argsort(-scores)[:k]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def embedded_search(vectors: np.ndarray[Any, Any], queries: np.ndarray[Any, Any], k: int,
                    truth: list[list[int]]) -> list[list[str]]:
    brute: list[float] = []
    for query in queries:
        started = time.perf_counter()
        exact_top(vectors, query, k)
        brute.append(time.perf_counter() - started)
    ids = [str(i) for i in range(len(vectors))]
    built = time.perf_counter()
    matrix = VectorMatrix(ids, [to_blob(v) for v in vectors], vectors.shape[1])
    build_s = time.perf_counter() - built
    ours: list[float] = []
    recall = 0.0
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = matrix.search(query, k)
        ours.append(time.perf_counter() - started)
        recall += len({int(i) for i, _ in found} & set(expected)) / k
    floor_p50 = percentile(brute, 50)
    return [
        ["numpy brute force (floor)", "-", f"{floor_p50 * 1e3:.2f}", f"{percentile(brute, 99) * 1e3:.2f}", "1.000",
         "1.00x"],
        ["embedded: VectorMatrix (exact)", f"{build_s:.1f} s load", f"{percentile(ours, 50) * 1e3:.2f}",
         f"{percentile(ours, 99) * 1e3:.2f}", f"{recall / len(queries):.3f}", f"{percentile(ours, 50) / floor_p50:.2f}x"],
    ]


def start_pgvector() -> tuple[subprocess.Popen[bytes], int, Path]:
    import importlib.util
    import socket

    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise SystemExit("pgserver is not installed (pip install pgserver); or pass --no-postgres")
    binaries = Path(spec.origin).parent / "pginstall" / "bin"
    directory = Path(tempfile.mkdtemp(prefix="bench-pgvector-"))
    data = directory / "data"
    data.mkdir()
    user = None
    if os.geteuid() == 0:  # PostgreSQL does not run as root
        user = "nobody"
        shutil.chown(directory, "nobody", "nogroup")
        shutil.chown(data, "nobody", "nogroup")
        directory.chmod(0o755)
    subprocess.run([str(binaries / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"], check=True,
                   capture_output=True, user=user)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(directory),
                                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                "-c", "maintenance_work_mem=1GB", "-c", "max_parallel_maintenance_workers=1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, user=user)
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    return process, port, directory


async def postgres_search(vectors: np.ndarray[Any, Any], queries: np.ndarray[Any, Any], k: int,
                          truth: list[list[int]], ef_values: list[int]) -> list[list[str]]:
    import asyncpg

    process, port, directory = start_pgvector()
    rows = []
    try:
        connection = await asyncpg.connect(f"postgres://postgres@127.0.0.1:{port}/postgres")
        try:
            dims = vectors.shape[1]
            await connection.execute("CREATE EXTENSION vector")
            await connection.execute("CREATE TABLE chunks (id bigint PRIMARY KEY, dimensions int, embedding_vector vector)")
            records = [(i, dims, "[" + ",".join(f"{x:.6f}" for x in v) + "]") for i, v in enumerate(vectors)]
            await connection.executemany("INSERT INTO chunks VALUES ($1, $2, $3::vector)", records)
            started = time.perf_counter()
            await connection.execute(
                f"CREATE INDEX ON chunks USING hnsw ((embedding_vector::vector({dims})) vector_cosine_ops) "
                f"WITH (m = 16, ef_construction = 64) WHERE dimensions = {dims}")
            build_s = time.perf_counter() - started
            await connection.execute("ANALYZE chunks")
            statement = (f"SELECT id FROM chunks WHERE dimensions = {dims} ORDER BY "
                         f"(embedding_vector::vector({dims})) <=> $1::vector({dims}) LIMIT {k}")
            literals = ["[" + ",".join(f"{x:.6f}" for x in q) + "]" for q in queries]
            for ef in ef_values:
                await connection.execute(f"SET hnsw.ef_search = {ef}")
                latencies = []
                recall = 0.0
                for literal, expected in zip(literals, truth, strict=True):
                    began = time.perf_counter()
                    found = await connection.fetch(statement, literal)
                    latencies.append(time.perf_counter() - began)
                    recall += len({r["id"] for r in found} & set(expected)) / k
                rows.append([f"PostgreSQL pgvector HNSW, ef_search {ef}", f"{build_s:.0f} s build",
                             f"{percentile(latencies, 50) * 1e3:.2f}", f"{percentile(latencies, 99) * 1e3:.2f}",
                             f"{recall / len(queries):.3f}", "-"])
        finally:
            await connection.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(title=title)
    for index, name in enumerate(header):
        out.add_column(name, justify="left" if index == 0 else "right")
    for row in rows:
        out.add_row(*row)
    Console().print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    table("Ingestion: extraction + chunking (embedding excluded), best of runs",
          ["format", "size", "floor MB/s", "ours MB/s", "ours / floor time", "chunks"],
          ingestion(args.mb, args.pages, args.runs))

    vectors, queries = synthetic(args.chunks, args.queries)
    truth = [exact_top(vectors, q, 10) for q in queries]
    rows = embedded_search(vectors, queries, 10, truth)
    if not args.no_postgres:
        rows += asyncio.run(postgres_search(vectors, queries, 10, truth, [40, 100, 200]))
    table(f"Search: {args.chunks:,} x 384 vectors, {args.queries} queries, top 10",
          ["index", "build", "p50 ms", "p99 ms", "recall@10", "p50 / floor"], rows)


if __name__ == "__main__":
    main()
