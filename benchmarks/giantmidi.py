"""GiantMIDI at full size: import, fetch, tokenize and the time to training of a corpus shaped like
GiantMIDI-Piano (about 11,000 files, 207 MB, named `Surname, Firstname, Title, id.mid`), on a local
store and on SeaweedFS, with the S3 requests counted.

    python benchmarks/giantmidi.py                      # 11,000 files; local store and SeaweedFS
    python benchmarks/giantmidi.py --files 2000 --stores local --no-jobs   # a quick look
    python benchmarks/giantmidi.py --stores local --no-jobs --scheme remi  # the `fast` preset's scheme

What it measures, in one run:
  1. import: `datasets.import_dataset` of the archive, beside uploading the same archive as one
     object (boto3 upload_file; a file copy for the local store), and the requests the import made;
  2. the job's dataset + tokenize stages (the driver's own code, in this process) with a cold token
     cache and then a warm one: seconds, S3 requests by operation, GETs per 32 MB of dataset;
  3. the driver's peak memory for those stages with a cold cache, in a fresh process: growth of the
     RSS high-water mark, beside the size of the token array;
  4. whole jobs through the CLI (`--preset tiny`, 1 epoch of 2 steps, composer's local Ray head): a
     200-file dataset vs all files with a cold cache, and all files again with a warm cache.
Don't run it beside the test suite: SeaweedFS serves on its fixed ports (8333 for S3).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "midi"
# GiantMIDI-Piano's most frequent composers: the archive's files are spread over them.
COMPOSERS = [("Chopin", "Frédéric"), ("Liszt", "Franz"), ("Bach", "Johann Sebastian"), ("Beethoven", "Ludwig van"),
             ("Mozart", "Wolfgang Amadeus"), ("Schubert", "Franz"), ("Scarlatti", "Domenico"),
             ("Debussy", "Claude"), ("Schumann", "Robert"), ("Haydn", "Joseph"), ("Czerny", "Carl"),
             ("Mendelssohn", "Felix"), ("Brahms", "Johannes"), ("Rachmaninoff", "Sergei"), ("Satie", "Erik"),
             ("Grieg", "Edvard"), ("Handel", "George Frideric"), ("Clementi", "Muzio"), ("Fauré", "Gabriel"),
             ("Ravel", "Maurice"), ("Scriabin", "Aleksandr"), ("Tchaikovsky", "Pyotr"), ("Albéniz", "Isaac"),
             ("Couperin", "François"), ("Rameau", "Jean-Philippe"), ("Field", "John"), ("Gottschalk", "Louis Moreau"),
             ("Godowsky", "Leopold"), ("Alkan", "Charles-Valentin"), ("Mompou", "Federico")]


def build_archive(path: Path, files: int, compression: int = zipfile.ZIP_STORED) -> tuple[int, int]:
    """A zip of `files` MIDI files made from ../shared/midi with GiantMIDI's naming; (files, bytes).
    Stored by default: GiantMIDI-Piano's own archive is 193 MB for 210 MB of MIDI, barely compressed."""
    sources = sorted(SHARED.rglob("*.mid"))
    total = 0
    with zipfile.ZipFile(path, "w", compression) as zf:
        for i in range(files):
            source = sources[i % len(sources)]
            surname, first = COMPOSERS[i % len(COMPOSERS)]
            title = source.stem.replace("_", " ")[:60]
            ident = hashlib.sha256(str(i).encode()).hexdigest()[:11]
            data = source.read_bytes()
            zf.writestr(f"{surname}, {first}, {title}, {ident}.mid", data)
            total += len(data)
    return files, total


class Requests:
    """S3 requests made through a boto3 client, by operation, and GETs of the dataset's objects
    (under datasets/) apart from the job's own and the cache's."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()

    def watch(self, client) -> None:
        client.meta.events.register("provide-client-params.s3.*", self._seen)

    def _seen(self, params, model, **_: object) -> None:
        self.count[model.name] += 1
        if model.name in ("GetObject", "HeadObject") and "/datasets/" in "/" + str(params.get("Key", "")):
            self.count[f"dataset {model.name}"] += 1

    def take(self) -> dict[str, int]:
        seen, self.count = dict(self.count), Counter()
        return seen


class SeaweedFS:
    def __init__(self, folder: Path) -> None:
        self.key, self.secret, self.bucket = "bench-key", "bench-" + secrets.token_hex(8), "composer-bench"
        self.endpoint = "http://127.0.0.1:8333"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}
        (folder / "data").mkdir(parents=True)
        self.log = open(folder / "weed.log", "wb")
        self.proc = subprocess.Popen([shutil.which("weed") or "weed", f"-logdir={folder}", "mini",
                                      f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                                      f"-bucket={self.bucket}"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key,
                                   aws_secret_access_key=self.secret, region_name="us-east-1")
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client.head_bucket(Bucket=self.bucket)
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"SeaweedFS did not start: see {folder / 'weed.log'}") from None
                time.sleep(0.5)

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def stages(store, dataset: str, job_id: str, work: Path, digest: str, scheme: str) -> dict:
    """The driver's dataset and tokenize stages, as a job runs them; what they recorded."""
    from service.job import dataset as dataset_stage
    from service.job import tokenize
    from service.job.context import JobRun
    from service.spec import JobSpec
    from service.storage import corpus as corpora
    from service.storage import jobstate
    from service.storage.joblog import JobLog

    spec = JobSpec(job_id=job_id, dataset=dataset, store=store.uri, preset="tiny", seq_len=64, dataset_digest=digest,
                   scheme=scheme)
    jobstate.save_spec(store, spec)
    job = JobRun(spec, store, work, JobLog(store, job_id, "driver"))
    started = time.monotonic()
    try:
        # As the driver does: the digest `composer submit` records finds cached tokens first.
        corpus = tokenize.from_cache(job, digest) or tokenize.run(job, dataset_stage.run(job))
    finally:
        job.log.close()
    record = corpora.record(store, job_id)
    return {"seconds": round(time.monotonic() - started, 3), "cache": record.cache, "phases": record.seconds,
            "shards_fetched": record.shards_fetched, "bytes_fetched": record.bytes_fetched,
            "tokens": int(len(corpus.tokens)), "token_bytes": int(corpus.tokens.nbytes), "pieces": corpus.pieces}


def open_bench_store(uri: str):
    from service.storage.store import open_store

    return open_store(uri)


def measure_driver_memory(uri: str, dataset: str, env: dict[str, str], scheme: str) -> dict:
    """Stages 1-2 with a cold cache in a fresh process: RSS high-water growth and the token array."""
    code = f"""
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
import giantmidi
def hwm():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) * 1024
import fastparse, numpy, service.job.tokenize, service.job.dataset  # imports before the baseline
store = giantmidi.open_bench_store({uri!r})
for key in store.list('cache/tokens'):
    store.delete(key)
open('/proc/self/clear_refs', 'w').write('5')
before = hwm()
with tempfile.TemporaryDirectory() as tmp:
    result = giantmidi.stages(store, {dataset!r}, 'bench-memory', Path(tmp), '', {scheme!r})
result['peak_growth'] = hwm() - before
print(json.dumps(result))
"""
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def job(dataset: str, store_uri: str, env: dict[str, str], scheme: str) -> dict:
    composer = shutil.which("composer") or f"{sys.executable} -m service.client.cli"
    started, submitted_at = time.monotonic(), time.time()
    proc = subprocess.run([*composer.split(), "submit", "--dataset", dataset, "--store", store_uri, "--preset", "tiny",
                           "--scheme", scheme, "--epochs", "1", "--steps-per-epoch", "2", "--samples", "1", "--wait",
                           "--json"],
                          env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"job on {dataset} failed: {proc.stderr[-2000:]}")
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    phases = state["phase_seconds"]
    to_training = sum(phases.get(p, 0.0) for p in ("queued", "dataset", "tokenize"))
    return {"wall": round(wall, 1), "token_cache": state["token_cache"], "phases": phases,
            "to_training": round(to_training, 1),
            "to_first_step": round(first_step_at(composer, state["job_id"], store_uri, env) - submitted_at, 1)}


def first_step_at(composer: str, job_id: str, store_uri: str, env: dict[str, str]) -> float:
    """When the job's last worker ended its first training step (the job log's UTC timestamps): the
    time to training a user waits for, worker start, TensorFlow and the first batch included."""
    from datetime import datetime

    logs = subprocess.run([*composer.split(), "logs", job_id, "--store", store_uri], env={**os.environ, **env},
                          capture_output=True, text=True, check=True).stdout
    # The cluster's copy of the log prefixes each worker line with Ray's "(RayTrainWorker pid=...)".
    stamps = [m.group(0) for line in logs.splitlines() if "first training step done" in line
              and (m := re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line))]
    if not stamps:
        raise SystemExit(f"job {job_id}'s log has no first training step")
    return max(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in stamps)


def run_store(kind: str, uri: str, env: dict[str, str], archive: Path, small: Path, total_bytes: int,
              args: argparse.Namespace, s3: SeaweedFS | None, tmp: Path) -> dict:
    from service.storage import datasets

    os.environ.update(env)
    store = open_bench_store(uri)
    requests = Requests()
    if kind == "s3":
        requests.watch(store._client)
    out: dict = {"store": kind}
    # The baseline: the archive as one object, the same run.
    started = time.monotonic()
    if s3 is not None:
        s3.client.upload_file(str(archive), s3.bucket, "bench/one-object.zip")
    else:
        shutil.copyfile(archive, tmp / f"one-object-{kind}.zip")
    out["one_object_s"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    meta = datasets.import_dataset(store, "gm", archive)
    out["import_s"] = round(time.monotonic() - started, 2)
    out["import_requests"] = requests.take()
    out["shards"] = meta.shards
    datasets.import_dataset(store, "gm200", small)
    requests.take()
    for run in ("cold", "warm"):
        out[f"stages_{run}"] = stages(store, "gm", f"bench-{run}", tmp / run, meta.digest, args.scheme)
        out[f"stages_{run}"]["requests"] = requests.take()
    gets = out["stages_cold"]["requests"].get("dataset GetObject", 0)
    out["dataset_gets_per_32mb_cold"] = round(gets / (total_bytes / (32 << 20)), 2)
    out["memory"] = measure_driver_memory(uri, "gm", env, args.scheme)
    if not args.no_jobs:
        for key in store.list("cache/tokens"):
            store.delete(key)
        out["job_200"] = job("gm200", uri, env, args.scheme)
        out["job_all_cold"] = job("gm", uri, env, args.scheme)
        out["job_all_warm"] = job("gm", uri, env, args.scheme)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=11_000)
    ap.add_argument("--stores", default="local,s3", help="local, s3 or both (comma-separated)")
    ap.add_argument("--no-jobs", action="store_true", help="skip the whole jobs through Ray")
    ap.add_argument("--deflate", action="store_true", help="deflate the archive's files (about 2:1 here)")
    ap.add_argument("--scheme", default="notes-chords", help="the jobs' token scheme (the `tiny` preset's by default)")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="composer-giantmidi-") as name:
        tmp = Path(name)
        started = time.monotonic()
        compression = zipfile.ZIP_DEFLATED if args.deflate else zipfile.ZIP_STORED
        files, total = build_archive(tmp / "giantmidi.zip", args.files, compression)
        build_archive(tmp / "giantmidi-200.zip", 200)
        zipped = (tmp / "giantmidi.zip").stat().st_size / 1e6
        print(f"archive: {files} files, {total / 1e6:.1f} MB of MIDI, {zipped:.1f} MB zipped, built in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        home = tmp / "composer-home"
        results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()}, {os.cpu_count()} CPUs",
                   "scheme": args.scheme,
                   "files": files, "bytes": total, "zipped": int(zipped * 1e6), "stores": []}
        for kind in args.stores.split(","):
            s3 = SeaweedFS(tmp / "s3") if kind == "s3" else None
            try:
                uri = f"s3://{s3.bucket}/bench" if s3 else str(tmp / "store")
                env = {**(s3.env() if s3 else {}), "COMPOSER_HOME": str(home)}
                result = run_store(kind, uri, env, tmp / "giantmidi.zip", tmp / "giantmidi-200.zip", total, args,
                                   s3, tmp)
            finally:
                if s3 is not None:
                    s3.stop()
                for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
                    os.environ.pop(variable, None)
            print(json.dumps(result, indent=1), flush=True)
            results["stores"].append(result)
        if not args.no_jobs:
            from service.client import cluster

            os.environ["COMPOSER_HOME"] = str(home)
            cluster.stop_local_head()  # the head the jobs started
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
